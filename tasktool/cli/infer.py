"""`tasktool infer`: parse options, then hand over to the inference runner (tasktool.inference)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tasktool.cli.common import (
    AbsPathsOpt,
    BatchOpt,
    DeviceOpt,
    DtypeOpt,
    FormatOpt,
    ModelOpt,
    OutputOpt,
    PickleOpt,
    QuietOpt,
    RevisionOpt,
    TaskArg,
    TrustOpt,
    option,
)

HELP = """Run a model on inputs: text arguments, a file, stdin (`-`), a dataset, or media paths.

Examples:

  tasktool infer sentiment "What a great film" "Dull and too long"

  tasktool infer ner --file news.jsonl --column text -o entities.jsonl

  cat questions.txt | tasktool infer qa - --context "$(cat page.txt)"

  tasktool infer summarize --file docs.csv --column document --max-new-tokens 60

  tasktool infer translate "Hello" --model Helsinki-NLP/opus-mt-en-de

  tasktool infer asr meeting.flac --chunk-length 30

  tasktool infer detect photos/ --threshold 0.7 --save-visuals boxes/

  tasktool infer generate --chat "Name three rivers." --model HuggingFaceTB/SmolLM2-135M-Instruct

  tasktool infer generate --file chats.jsonl --do-sample --temperature 0.7 --seed 1 -o replies.jsonl
"""

G_IN, G_OUT, G_MODEL, G_TASK = "Inputs", "Output", "Model and device", "Task options"


InputsArg = Annotated[
    list[str] | None, typer.Argument(help="Texts, paths, or '-' for stdin.", show_default=False)
]
FileOpt = option(
    str | None,
    "Read inputs from .txt/.jsonl/.json/.csv/.tsv/.parquet (or - for stdin).",
    G_IN,
    "--file",
    "-f",
)
ColumnOpt = option(
    str | None, "Column holding the input (default: text, sentence, ...).", G_IN, "--column", "-c"
)
DatasetOpt = option(str | None, "Dataset: a save_to_disk folder or a Hub name.", G_IN)
SplitOpt = option(str, "Dataset split.", G_IN)
DatasetConfigOpt = option(
    str | None, "Dataset configuration (e.g. --dataset glue --dataset-config sst2).", G_IN
)
DelimiterOpt = option(
    str | None, "CSV field separator: one character, or tab/pipe/semicolon (default: by suffix).", G_IN
)
ContextRecordsOpt = option(
    str,
    "QA: the context in records: once (in the first record that uses it; the others name its "
    "context_id), full (in every record) or id (the context_id alone).",
    G_OUT,
)
KeepOpt = option(bool, "--smoke: keep the shrunk model (its folder is named) instead of removing it.", G_OUT)
QuestionOpt = option(str | None, "QA: the question (inputs are contexts).", G_IN)
ContextOpt = option(str | None, "QA: the context (inputs are questions).", G_IN)
ResumeOpt = option(
    bool,
    "Continue an interrupted run: check --output's .partial file against these inputs and options, "
    "skip the inputs it holds, append the rest.",
    G_OUT,
)
OverwriteOpt = option(
    bool, "Let --resume replace a complete --output of an earlier run (never done without it).", G_OUT
)
OnErrorOpt = option(str, "raise: stop at a bad input; skip: write an error record and go on.", G_OUT)
VisualsOpt = option(str | None, "Vision: write pictures of the results (boxes, masks, maps) to DIR.", G_OUT)
RawOpt = option(
    bool, "Vision: also save the raw arrays (masks as PNG, maps as NPY) to --save-visuals.", G_OUT
)
SmokeOpt = option(
    bool,
    "Check the command fast: a shrunk random model of the same architecture, the first few inputs.",
    G_OUT,
    "--smoke",
)
MaxTokensOpt = option(int | None, "Cap padded tokens per batch instead of a fixed batch size.", G_MODEL)
WorkersOpt = option(
    int | None,
    "CPU: batches run at once, each on its share of the cores (default: 2 for text encoders on a "
    "multi-core CPU; 1: one at a time).",
    G_MODEL,
    min=1,
)
CompileOpt = option(bool, "torch.compile the model (GPU, long runs).", G_MODEL, "--compile")
BackendOpt = option(
    str,
    "auto (ONNX Runtime for a `tasktool export` folder, else torch), torch, or onnxruntime (a torch "
    "model is exported once to a cache folder).",
    G_MODEL,
)
RecheckOpt = option(
    float | None,
    "Classifiers (text, token, image, audio) on an int8 export: rows whose two best label scores are "
    "closer than this run again on its float32 graph (e.g. 0.5; NER: a sentence with any close token).",
    G_MODEL,
)
MaxLengthOpt = option(int | None, "Truncate inputs to this many tokens.", G_TASK)
TopKOpt = option(int | None, "Labels/fills to return; sampling top-k for generation.", G_TASK)
AggregationOpt = option(str, "NER entity grouping: none, simple, first, average, max.", G_TASK)
NewTokensOpt = option(int | None, "Generation length.", G_TASK)
BeamsOpt = option(int | None, "Beam search width.", G_TASK)
SampleOpt = option(bool, "Sample instead of greedy/beam decoding.", G_TASK, "--do-sample")
TemperatureOpt = option(float | None, "Sampling temperature.", G_TASK)
TopPOpt = option(float | None, "Nucleus sampling mass.", G_TASK)
SourceLangOpt = option(str | None, "MT: source language (T5 prefix, mBART/NLLB code).", G_TASK)
TargetLangOpt = option(str | None, "MT: target language.", G_TASK)
StrideOpt = option(int, "QA: tokens shared by consecutive windows of a long context.", G_TASK)
AnswerLengthOpt = option(int, "QA: longest answer in tokens.", G_TASK)
ThresholdOpt = option(float, "Boxes/segments: minimum score.", G_TASK)
ChunkOpt = option(float | None, "ASR: seconds per chunk for long audio.", G_TASK)
LanguageOpt = option(str | None, "ASR (Whisper): spoken language.", G_TASK)
TimestampsOpt = option(bool, "ASR: chunk timestamps.", G_TASK, "--return-timestamps")
SubtaskOpt = option(str, "Segmentation: panoptic, semantic or instance.", G_TASK)
G_CHAT = "Chat and sampling"
ChatOpt = option(
    bool, "Generation: each prompt is one user turn, rendered with the chat template.", G_CHAT, "--chat"
)
SystemOpt = option(str | None, "Chat: a system message before each conversation.", G_CHAT)
ChatTemplateOpt = option(
    str | None, "Chat: a Jinja chat template FILE (for tokenizers without one).", G_CHAT, "--chat-template"
)
SeedOpt = option(int | None, "Sampling: random seed (same seed and inputs, same text).", G_CHAT)
RepetitionOpt = option(float | None, "Generation: penalty on repeated tokens (e.g. 1.1).", G_CHAT)
StopOpt = option(
    list[str] | None, "Generation: stop at this string, cut before it (repeatable).", G_CHAT, "--stop"
)
StreamOpt = option(
    bool | None,
    "Generation: print tokens as they come (default: on a terminal with one input).",
    G_CHAT,
    "--stream/--no-stream",
)
DeviceMapOpt = option(
    str | None, "Spread a big model over the GPUs and CPU there are: auto (accelerate).", G_MODEL
)
FourBitOpt = option(bool, "Load the weights in 4-bit (bitsandbytes, CUDA GPU).", G_MODEL, "--load-in-4bit")
EightBitOpt = option(bool, "Load the weights in 8-bit (bitsandbytes, CUDA GPU).", G_MODEL, "--load-in-8bit")


def infer(
    task: TaskArg,
    inputs: InputsArg = None,
    file: FileOpt = None,
    column: ColumnOpt = None,
    dataset: DatasetOpt = None,
    split: SplitOpt = "test",
    dataset_config: DatasetConfigOpt = None,
    delimiter: DelimiterOpt = None,
    question: QuestionOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = None,
    fmt: FormatOpt = "auto",
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
    on_error: OnErrorOpt = "raise",
    save_visuals: VisualsOpt = None,
    save_raw: RawOpt = False,
    quiet: QuietOpt = False,
    smoke: SmokeOpt = False,
    keep: KeepOpt = False,
    context_in_records: ContextRecordsOpt = "once",
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    batch_size: BatchOpt = None,
    max_batch_tokens: MaxTokensOpt = None,
    workers: WorkersOpt = None,
    compile: CompileOpt = False,
    trust_remote_code: TrustOpt = False,
    allow_pickle: PickleOpt = False,
    allow_absolute_paths: AbsPathsOpt = False,
    max_length: MaxLengthOpt = None,
    top_k: TopKOpt = None,
    aggregation: AggregationOpt = "simple",
    max_new_tokens: NewTokensOpt = None,
    num_beams: BeamsOpt = None,
    do_sample: SampleOpt = False,
    temperature: TemperatureOpt = None,
    top_p: TopPOpt = None,
    source_lang: SourceLangOpt = None,
    target_lang: TargetLangOpt = None,
    stride: StrideOpt = 128,
    max_answer_length: AnswerLengthOpt = 30,
    threshold: ThresholdOpt = 0.5,
    chunk_length: ChunkOpt = None,
    language: LanguageOpt = None,
    return_timestamps: TimestampsOpt = False,
    subtask: SubtaskOpt = "panoptic",
    chat: ChatOpt = False,
    system: SystemOpt = None,
    chat_template: ChatTemplateOpt = None,
    seed: SeedOpt = None,
    repetition_penalty: RepetitionOpt = None,
    stop: StopOpt = None,
    stream: StreamOpt = None,
    device_map: DeviceMapOpt = None,
    load_in_4bit: FourBitOpt = False,
    load_in_8bit: EightBitOpt = False,
    backend: BackendOpt = "auto",
    recheck_margin: RecheckOpt = None,
):
    from dataclasses import fields

    from tasktool.cli.common import FORMATS, GLOBAL, check_choice, is_quiet
    from tasktool.inference import run_inference
    from tasktool.io.inputs import CONTEXT_IN_RECORDS, InputSpec
    from tasktool.io.readers import parse_delimiter
    from tasktool.options import InferOptions
    from tasktool.runtime import DEVICES, DTYPES
    from tasktool.tasks.registry import resolve

    spec = resolve(task)
    fmt = GLOBAL["format"] or fmt  # --format before or after the command
    quiet = is_quiet(quiet)
    check_choice("--format", fmt, FORMATS)  # every option value is checked before a model loads
    check_choice("--context-in-records", context_in_records, CONTEXT_IN_RECORDS)
    check_choice("--on-error", on_error, ("raise", "skip"))
    check_choice("--aggregation", aggregation, ("none", "simple", "first", "average", "max"))
    check_choice("--subtask", subtask, ("panoptic", "semantic", "instance"))
    check_choice("--device", device, DEVICES)
    check_choice("--dtype", dtype, DTYPES)
    check_choice("--backend", backend, ("auto", "torch", "onnxruntime"))
    given = locals()
    opts = InferOptions(**{f.name: given[f.name] for f in fields(InferOptions) if f.name in given})
    source = InputSpec(
        texts=tuple(inputs or ()),
        file=file,
        column=column,
        dataset=dataset,
        split=split,
        dataset_config=dataset_config,
        question=question,
        context=context,
        delimiter=parse_delimiter(delimiter),
        allow_absolute_paths=allow_absolute_paths,
        context_in_records=context_in_records,
    )
    output = Path(output) if output else None
    run_inference(
        spec, opts, source, output, fmt, resume, on_error, quiet, smoke, overwrite=overwrite, keep=keep
    )
