"""The one table from a task name to everything task-specific.

Importing this module must stay cheap (no torch, no transformers): `tasktool tasks` and
`--help` read it. The implementations are named by dotted paths and imported on use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from tasktool.errors import TaskToolError, nearest

# Input kinds: how readers turn command-line inputs into payloads.
TEXT, QA, AUDIO, IMAGE = "text", "question+context", "audio", "image"


@dataclass(frozen=True)
class TaskSpec:
    name: str
    aliases: tuple[str, ...]
    summary: str
    input_kind: str
    default_model: str
    model_class: str  # transformers Auto class used to load the model
    mapping: str  # modeling_auto *_MAPPING_NAMES whose architectures serve this task
    family: str  # tiny random model family (tasktool.tiny), for tests and smoke mode
    predictor: str | None = None  # "module:Class" of the inference implementation
    trainer: str | None = None  # "module:Class" of the fine-tuning implementation
    metric: str = ""
    offline_base: bool = False  # the bundled MiniLM can serve as the base model for fine-tuning
    extra_mappings: tuple[str, ...] = field(default=())

    @property
    def supports(self) -> list[str]:
        modes = []
        if self.predictor:
            modes.append("infer")
        if self.trainer:
            modes += ["finetune", "evaluate"]
        return modes

    def load_predictor(self):
        return _load(self.predictor, self.name, "infer")

    def load_trainer(self):
        return _load(self.trainer, self.name, "finetune")


def _load(path: str | None, task: str, mode: str):
    if not path:
        raise TaskToolError(f"'{mode}' is not available for task '{task}' yet", "see `tasktool tasks`")
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


_T = "tasktool.tasks."
_TR = "tasktool.training."

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec(
            "text-generation",
            ("generate", "generation", "causal-lm", "lm", "complete"),
            "Continue a prompt (GPT-2 style causal LM)",
            TEXT,
            "openai-community/gpt2",
            "AutoModelForCausalLM",
            "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
            "gpt2",
            predictor=_T + "text_generation:TextGeneration",
            trainer=_TR + "causal_lm:CausalLMTrainer",
            metric="perplexity",
        ),
        TaskSpec(
            "text-classification",
            ("classify", "classification", "sentiment", "sentiment-analysis", "sequence-classification"),
            "Label a sentence or sentence pair (BERT style encoder)",
            TEXT,
            "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
            "AutoModelForSequenceClassification",
            "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
            "bert",
            predictor=_T + "text_classification:TextClassification",
            trainer=_TR + "classification:ClassificationTrainer",
            metric="accuracy, macro-F1",
            offline_base=True,
        ),
        TaskSpec(
            "token-classification",
            ("ner", "token", "tagging", "pos", "entities"),
            "Tag each word: named entities, parts of speech",
            TEXT,
            "dbmdz/bert-large-cased-finetuned-conll03-english",
            "AutoModelForTokenClassification",
            "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES",
            "bert",
            predictor=_T + "token_classification:TokenClassification",
            trainer=_TR + "ner:NERTrainer",
            metric="seqeval precision, recall, F1",
            offline_base=True,
        ),
        TaskSpec(
            "question-answering",
            ("qa", "extractive-qa", "squad"),
            "Find the answer span to a question in a context",
            QA,
            "distilbert/distilbert-base-cased-distilled-squad",
            "AutoModelForQuestionAnswering",
            "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES",
            "bert",
            predictor=_T + "question_answering:QuestionAnswering",
            trainer=_TR + "qa:QATrainer",
            metric="SQuAD exact match, F1",
            offline_base=True,
        ),
        TaskSpec(
            "summarization",
            ("summarize", "summary", "sum"),
            "Shorten a document (BART / T5 encoder-decoder)",
            TEXT,
            "sshleifer/distilbart-cnn-12-6",
            "AutoModelForSeq2SeqLM",
            "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
            "bart",
            predictor=_T + "seq2seq:Summarization",
            trainer=_TR + "seq2seq:Seq2SeqTaskTrainer",
            metric="ROUGE-1/2/L",
        ),
        TaskSpec(
            "translation",
            ("translate", "mt"),
            "Translate text (Marian / T5 / mBART encoder-decoder)",
            TEXT,
            "google-t5/t5-small",
            "AutoModelForSeq2SeqLM",
            "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
            "marian",
            predictor=_T + "seq2seq:Translation",
            trainer=_TR + "seq2seq:Seq2SeqTaskTrainer",
            metric="sacreBLEU, chrF",
        ),
        TaskSpec(
            "fill-mask",
            ("mask", "mlm", "fill"),
            "Predict the masked word (BERT masked LM)",
            TEXT,
            "distilbert/distilroberta-base",
            "AutoModelForMaskedLM",
            "MODEL_FOR_MASKED_LM_MAPPING_NAMES",
            "bert",
            predictor=_T + "fill_mask:FillMask",
            trainer=_TR + "masked_lm:MaskedLMTrainer",
            metric="perplexity",
        ),
        TaskSpec(
            "automatic-speech-recognition",
            ("asr", "transcribe", "speech-to-text", "stt", "speech"),
            "Transcribe speech (Whisper, Wav2Vec2-CTC)",
            AUDIO,
            "openai/whisper-base",
            "AutoModelForSpeechSeq2Seq",
            "MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES",
            "whisper",
            predictor=_T + "speech_recognition:SpeechRecognition",
            trainer=_TR + "speech:SpeechRecognitionTrainer",
            metric="WER, CER",
            extra_mappings=("MODEL_FOR_CTC_MAPPING_NAMES",),
        ),
        TaskSpec(
            "audio-classification",
            ("audio", "audio-cls", "keyword-spotting", "sound"),
            "Label an audio clip (Wav2Vec2 classifier)",
            AUDIO,
            "superb/wav2vec2-base-superb-ks",
            "AutoModelForAudioClassification",
            "MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES",
            "wav2vec2",
            predictor=_T + "audio_classification:AudioClassification",
            trainer=_TR + "audio_classification:AudioClassificationTrainer",
            metric="accuracy, macro-F1",
        ),
        TaskSpec(
            "image-classification",
            ("image", "image-cls", "img-cls", "vision"),
            "Label an image (ViT, ConvNeXT)",
            IMAGE,
            "google/vit-base-patch16-224",
            "AutoModelForImageClassification",
            "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",
            "vit",
            predictor=_T + "image_classification:ImageClassification",
            trainer=_TR + "image_classification:ImageClassificationTrainer",
            metric="accuracy, macro-F1",
        ),
        TaskSpec(
            "object-detection",
            ("detect", "detection", "od", "boxes"),
            "Find objects with boxes and labels (DETR)",
            IMAGE,
            "facebook/detr-resnet-50",
            "AutoModelForObjectDetection",
            "MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES",
            "detr",
            predictor=_T + "object_detection:ObjectDetection",
        ),
        TaskSpec(
            "image-segmentation",
            ("segment", "segmentation", "seg", "panoptic"),
            "Label every pixel: semantic, instance, panoptic (Mask2Former)",
            IMAGE,
            "facebook/mask2former-swin-tiny-coco-panoptic",
            "AutoModelForUniversalSegmentation",
            "MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES",
            "mask2former",
            predictor=_T + "image_segmentation:ImageSegmentation",
        ),
        TaskSpec(
            "depth-estimation",
            ("depth",),
            "Estimate per-pixel depth from one image (GLPN)",
            IMAGE,
            "vinvino02/glpn-nyu",
            "AutoModelForDepthEstimation",
            "MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES",
            "glpn",
            predictor=_T + "depth_estimation:DepthEstimation",
        ),
    ]
}

ALIASES: dict[str, str] = {alias: spec.name for spec in TASKS.values() for alias in spec.aliases}


def resolve(name: str) -> TaskSpec:
    """Find a task by canonical name or alias; unknown names get the nearest suggestion."""
    key = name.strip().lower().replace("_", "-")
    if key in TASKS:
        return TASKS[key]
    if key in ALIASES:
        return TASKS[ALIASES[key]]
    guess = nearest(key, [*TASKS, *ALIASES])
    hint = f"did you mean '{guess[0]}'?" if guess else "run `tasktool tasks` to list them"
    raise TaskToolError(f"unknown task '{name}'", hint)
