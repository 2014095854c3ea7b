"""The one table from a task name to everything task-specific.

Each entry is built by keyword and points at the task's folder under `tasktool/tasks/`, whose
modules hold its parts (the contract is in tasks/base.py):

    predict.py   Predictor  inference hooks for the engine (prepare / predict / display)
    data.py      Reader     labelled examples for finetune and evaluate (columns, one row -> one example)
    train.py     Trainer    fine-tuning hooks (features, collator, labels) over training.trainer
    evaluate.py  Evaluator  metrics over the engine's predictions (no trainer involved)
    sample.py    write()    a small built-in sample for `tasktool smoke`; the tiny model's settings

Importing this module must stay cheap (no torch, no transformers): `tasktool tasks` and `--help`
read it. The parts are imported on use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from tasktool.errors import TaskToolError, nearest
from tasktool.io.kinds import AUDIO, IMAGE, PAIR, TEXT

MODES = ("infer", "finetune", "evaluate")


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
    package: str  # the task's folder under tasktool/tasks
    modes: tuple[str, ...] = MODES
    predictor: str = "predict:Predictor"  # "module:attribute" inside the folder, where not the default
    metric: str = ""
    offline_base: bool = False  # the bundled MiniLM can serve as the base model for fine-tuning
    extra_mappings: tuple[str, ...] = field(default=())

    @property
    def supports(self) -> list[str]:
        return [mode for mode in MODES if mode in self.modes]

    def part(self, path: str, mode: str = "infer"):
        """`module:attribute` of the task's folder, imported now."""
        if mode not in self.modes:
            raise TaskToolError(
                f"'{mode}' is not available for task '{self.name}' yet", "see `tasktool tasks`"
            )
        module, _, attr = path.partition(":")
        loaded = importlib.import_module(f"tasktool.tasks.{self.package}.{module}")
        return getattr(loaded, attr) if attr else loaded

    def load_predictor(self):
        return self.part(self.predictor)

    def load_trainer(self):
        return self.part("train:Trainer", "finetune")

    def reader(self, recipe: dict | None = None, columns: dict | None = None):
        return self.part("data:Reader", "evaluate")(self, recipe or {}, columns)

    def evaluator(self, recipe: dict | None = None):
        return self.part("evaluate:Evaluator", "evaluate")(self, recipe or {})

    def recipe_keys(self) -> dict[str, tuple[type, str]]:
        """Recipe keys only this task reads: RECIPE_KEYS of its folder's `__init__` (same shape as
        tasktool.training.recipe.FIELDS; the folder's __init__ imports nothing heavy)."""
        module = importlib.import_module(f"tasktool.tasks.{self.package}")
        return dict(getattr(module, "RECIPE_KEYS", {}))

    def sample(self):
        """The folder's sample module: write(folder) -> files and infer arguments; TINY / SMOKE_TINY."""
        return importlib.import_module(f"tasktool.tasks.{self.package}.sample")

    def build_tiny(self, out_dir, family: str | None = None, **kwargs) -> Path:
        """A tiny random model for this task (tests, smoke mode): the sample module's own `build_tiny`
        where it has one (a family tiny/ does not know), else tiny/'s builder of the family, with the
        task's head and the sample's `TINY` settings."""
        from tasktool import tiny

        sample = self.sample()
        for key, value in getattr(sample, "TINY", {}).items():
            kwargs.setdefault(key, value)
        if hasattr(sample, "build_tiny") and family is None:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            sample.build_tiny(Path(out_dir), **kwargs)
            return Path(out_dir)
        return tiny.build(family or self.family, out_dir, model_class=self.model_class, **kwargs)

    def serves(self, architecture: str) -> bool:
        from tasktool.runtime import architectures_in

        return any(architecture in architectures_in(m) for m in (self.mapping, *self.extra_mappings))

    @staticmethod
    def tasks_serving(architecture: str) -> list[str]:
        return tasks_serving(architecture)


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec(
            name="text-generation",
            aliases=("generate", "generation", "causal-lm", "lm", "complete"),
            summary="Continue a prompt (GPT-2 style causal LM)",
            input_kind=TEXT,
            default_model="openai-community/gpt2",
            model_class="AutoModelForCausalLM",
            mapping="MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
            family="gpt2",
            package="text_generation",
            metric="perplexity",
        ),
        TaskSpec(
            name="text-classification",
            aliases=(
                "classify",
                "classification",
                "sentiment",
                "sentiment-analysis",
                "sequence-classification",
            ),
            summary="Label a sentence or sentence pair (BERT style encoder)",
            input_kind=TEXT,
            default_model="distilbert/distilbert-base-uncased-finetuned-sst-2-english",
            model_class="AutoModelForSequenceClassification",
            mapping="MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
            family="bert",
            package="text_classification",
            metric="accuracy, macro-F1",
            offline_base=True,
        ),
        TaskSpec(
            name="token-classification",
            aliases=("ner", "token", "tagging", "pos", "entities"),
            summary="Tag each word: named entities, parts of speech",
            input_kind=TEXT,
            default_model="dbmdz/bert-large-cased-finetuned-conll03-english",
            model_class="AutoModelForTokenClassification",
            mapping="MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES",
            family="bert",
            package="token_classification",
            metric="seqeval precision, recall, F1",
            offline_base=True,
        ),
        TaskSpec(
            name="question-answering",
            aliases=("qa", "extractive-qa", "squad"),
            summary="Find the answer span to a question in a context",
            input_kind=PAIR,
            default_model="distilbert/distilbert-base-cased-distilled-squad",
            model_class="AutoModelForQuestionAnswering",
            mapping="MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES",
            family="bert",
            package="question_answering",
            metric="SQuAD exact match, F1",
            offline_base=True,
        ),
        TaskSpec(
            name="summarization",
            aliases=("summarize", "summary", "sum"),
            summary="Shorten a document (BART / T5 encoder-decoder)",
            input_kind=TEXT,
            default_model="sshleifer/distilbart-cnn-12-6",
            model_class="AutoModelForSeq2SeqLM",
            mapping="MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
            family="bart",
            package="seq2seq",
            predictor="predict:Summarization",
            metric="ROUGE-1/2/L",
        ),
        TaskSpec(
            name="translation",
            aliases=("translate", "mt"),
            summary="Translate text (Marian / T5 / mBART encoder-decoder)",
            input_kind=TEXT,
            default_model="google-t5/t5-small",
            model_class="AutoModelForSeq2SeqLM",
            mapping="MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
            family="marian",
            package="seq2seq",
            predictor="predict:Translation",
            metric="sacreBLEU, chrF",
        ),
        TaskSpec(
            name="fill-mask",
            aliases=("mask", "mlm", "fill"),
            summary="Predict the masked word (BERT masked LM)",
            input_kind=TEXT,
            default_model="distilbert/distilroberta-base",
            model_class="AutoModelForMaskedLM",
            mapping="MODEL_FOR_MASKED_LM_MAPPING_NAMES",
            family="bert",
            package="fill_mask",
            metric="perplexity",
        ),
        TaskSpec(
            name="feature-extraction",
            aliases=("embed", "embeddings", "sentence-embeddings", "similarity"),
            summary="Embed a sentence; score sentence pairs by cosine similarity",
            input_kind=TEXT,
            default_model="sentence-transformers/all-MiniLM-L6-v2",
            model_class="AutoModel",
            mapping="MODEL_MAPPING_NAMES",
            family="bert",
            package="feature_extraction",
            modes=("infer", "evaluate"),
            metric="Spearman, Pearson",
        ),
        TaskSpec(
            name="automatic-speech-recognition",
            aliases=("asr", "transcribe", "speech-to-text", "stt", "speech"),
            summary="Transcribe speech (Whisper, Wav2Vec2-CTC)",
            input_kind=AUDIO,
            default_model="openai/whisper-base",
            model_class="AutoModelForSpeechSeq2Seq",
            mapping="MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES",
            family="whisper",
            package="speech_recognition",
            metric="WER, CER",
            extra_mappings=("MODEL_FOR_CTC_MAPPING_NAMES",),
        ),
        TaskSpec(
            name="audio-classification",
            aliases=("audio", "audio-cls", "keyword-spotting", "sound"),
            summary="Label an audio clip (Wav2Vec2 classifier)",
            input_kind=AUDIO,
            default_model="superb/wav2vec2-base-superb-ks",
            model_class="AutoModelForAudioClassification",
            mapping="MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES",
            family="wav2vec2",
            package="audio_classification",
            metric="accuracy, macro-F1",
        ),
        TaskSpec(
            name="image-classification",
            aliases=("image", "image-cls", "img-cls", "vision"),
            summary="Label an image (ViT, ConvNeXT)",
            input_kind=IMAGE,
            default_model="google/vit-base-patch16-224",
            model_class="AutoModelForImageClassification",
            mapping="MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",
            family="vit",
            package="image_classification",
            metric="accuracy, macro-F1",
        ),
        TaskSpec(
            name="object-detection",
            aliases=("detect", "detection", "od", "boxes"),
            summary="Find objects with boxes and labels (DETR)",
            input_kind=IMAGE,
            default_model="facebook/detr-resnet-50",
            model_class="AutoModelForObjectDetection",
            mapping="MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES",
            family="detr",
            package="object_detection",
            metric="COCO mAP, mAP@50, mAP@75, per-class AP",
        ),
        TaskSpec(
            name="image-segmentation",
            aliases=("segment", "segmentation", "seg", "panoptic"),
            summary="Label every pixel: semantic, instance, panoptic (Mask2Former)",
            input_kind=IMAGE,
            default_model="facebook/mask2former-swin-tiny-coco-panoptic",
            model_class="AutoModelForUniversalSegmentation",
            mapping="MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES",
            family="mask2former",
            package="image_segmentation",
            metric="mIoU, per-class IoU, pixel accuracy (PQ for panoptic)",
        ),
        TaskSpec(
            name="depth-estimation",
            aliases=("depth",),
            summary="Estimate per-pixel depth from one image (GLPN)",
            input_kind=IMAGE,
            default_model="vinvino02/glpn-nyu",
            model_class="AutoModelForDepthEstimation",
            mapping="MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES",
            family="glpn",
            package="depth_estimation",
            metric="AbsRel, RMSE, log10, delta<1.25^k",
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


def tasks_serving(architecture: str) -> list[str]:
    """The tasks with a head whose models include `architecture` (e.g. BertForTokenClassification).

    A task over bare models (feature-extraction: any `AutoModel`) is left out: a bare encoder is the
    start of every head task, not a model trained for another task."""
    return [
        spec.name for spec in TASKS.values() if spec.model_class != "AutoModel" and spec.serves(architecture)
    ]
