"""`tasktool infer`: parse options, then hand over to the inference runner."""

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
"""

G_IN, G_OUT, G_MODEL, G_TASK = "Inputs", "Output", "Model and device", "Task options"


def infer(
    task: TaskArg,
    inputs: Annotated[
        list[str] | None, typer.Argument(help="Texts, paths, or '-' for stdin.", show_default=False)
    ] = None,
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            "-f",
            help="Read inputs from .txt/.jsonl/.json/.csv/.tsv/.parquet (or - for stdin).",
            rich_help_panel=G_IN,
        ),
    ] = None,
    column: Annotated[
        str | None,
        typer.Option(
            "--column",
            "-c",
            help="Column holding the input (default: text, sentence, ...).",
            rich_help_panel=G_IN,
        ),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Dataset: a save_to_disk folder or a Hub name.", rich_help_panel=G_IN)
    ] = None,
    split: Annotated[str, typer.Option(help="Dataset split.", rich_help_panel=G_IN)] = "test",
    question: Annotated[
        str | None, typer.Option(help="QA: the question (inputs are contexts).", rich_help_panel=G_IN)
    ] = None,
    context: Annotated[
        str | None, typer.Option(help="QA: the context (inputs are questions).", rich_help_panel=G_IN)
    ] = None,
    output: OutputOpt = None,
    fmt: FormatOpt = "auto",
    resume: Annotated[
        bool,
        typer.Option(
            help="Skip inputs whose ids --output (.jsonl) already holds; append the rest.",
            rich_help_panel=G_OUT,
        ),
    ] = False,
    on_error: Annotated[
        str,
        typer.Option(
            help="raise: stop at a bad input; skip: write an error record and go on.", rich_help_panel=G_OUT
        ),
    ] = "raise",
    save_visuals: Annotated[
        str | None,
        typer.Option(help="Vision: write pictures (boxes, masks, depth maps) to DIR.", rich_help_panel=G_OUT),
    ] = None,
    save_raw: Annotated[
        bool,
        typer.Option(
            help="Vision: also save raw masks (PNG) and depth (NPY) to --save-visuals.", rich_help_panel=G_OUT
        ),
    ] = False,
    quiet: QuietOpt = False,
    smoke: Annotated[
        bool,
        typer.Option(
            "--smoke",
            help="Check the command fast: a shrunk random model of the same architecture, the first few inputs.",
            rich_help_panel=G_OUT,
        ),
    ] = False,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    batch_size: BatchOpt = 8,
    max_batch_tokens: Annotated[
        int | None,
        typer.Option(
            help="Cap padded tokens per batch instead of a fixed batch size.", rich_help_panel=G_MODEL
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="CPU: batches run at once, each on its share of the cores "
            "(default: 2 for text encoders on a multi-core CPU; 1: one at a time).",
            min=1,
            rich_help_panel=G_MODEL,
        ),
    ] = None,
    compile: Annotated[
        bool,
        typer.Option("--compile", help="torch.compile the model (GPU, long runs).", rich_help_panel=G_MODEL),
    ] = False,
    trust_remote_code: TrustOpt = False,
    allow_pickle: PickleOpt = False,
    allow_absolute_paths: AbsPathsOpt = False,
    max_length: Annotated[
        int | None, typer.Option(help="Truncate inputs to this many tokens.", rich_help_panel=G_TASK)
    ] = None,
    top_k: Annotated[
        int | None,
        typer.Option(help="Labels/fills to return; sampling top-k for generation.", rich_help_panel=G_TASK),
    ] = None,
    aggregation: Annotated[
        str,
        typer.Option(help="NER entity grouping: none, simple, first, average, max.", rich_help_panel=G_TASK),
    ] = "simple",
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Generation length.", rich_help_panel=G_TASK)
    ] = None,
    num_beams: Annotated[int | None, typer.Option(help="Beam search width.", rich_help_panel=G_TASK)] = None,
    do_sample: Annotated[
        bool,
        typer.Option("--do-sample", help="Sample instead of greedy/beam decoding.", rich_help_panel=G_TASK),
    ] = False,
    temperature: Annotated[
        float | None, typer.Option(help="Sampling temperature.", rich_help_panel=G_TASK)
    ] = None,
    top_p: Annotated[
        float | None, typer.Option(help="Nucleus sampling mass.", rich_help_panel=G_TASK)
    ] = None,
    source_lang: Annotated[
        str | None,
        typer.Option(
            help="Translation source language (T5 prefix, mBART/NLLB code).", rich_help_panel=G_TASK
        ),
    ] = None,
    target_lang: Annotated[
        str | None, typer.Option(help="Translation target language.", rich_help_panel=G_TASK)
    ] = None,
    stride: Annotated[
        int,
        typer.Option(
            help="QA: tokens shared by consecutive windows of a long context.", rich_help_panel=G_TASK
        ),
    ] = 128,
    max_answer_length: Annotated[
        int, typer.Option(help="QA: longest answer in tokens.", rich_help_panel=G_TASK)
    ] = 30,
    threshold: Annotated[
        float, typer.Option(help="Detection/segmentation: minimum score.", rich_help_panel=G_TASK)
    ] = 0.5,
    chunk_length: Annotated[
        float | None, typer.Option(help="ASR: seconds per chunk for long audio.", rich_help_panel=G_TASK)
    ] = None,
    language: Annotated[
        str | None, typer.Option(help="ASR (Whisper): spoken language.", rich_help_panel=G_TASK)
    ] = None,
    return_timestamps: Annotated[
        bool, typer.Option("--return-timestamps", help="ASR: chunk timestamps.", rich_help_panel=G_TASK)
    ] = False,
    subtask: Annotated[
        str, typer.Option(help="Segmentation: panoptic, semantic or instance.", rich_help_panel=G_TASK)
    ] = "panoptic",
):
    from tasktool.cli.common import check_choice
    from tasktool.infer import run_inference
    from tasktool.io.readers import InputSpec
    from tasktool.options import InferOptions
    from tasktool.tasks.registry import resolve

    spec = resolve(task)
    check_choice("--on-error", on_error, ("raise", "skip"))
    check_choice("--aggregation", aggregation, ("none", "simple", "first", "average", "max"))
    check_choice("--subtask", subtask, ("panoptic", "semantic", "instance"))
    from tasktool.runtime import DEVICES, DTYPES

    check_choice("--device", device, DEVICES)
    check_choice("--dtype", dtype, DTYPES)
    opts = InferOptions(
        model=model,
        revision=revision,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
        workers=workers,
        trust_remote_code=trust_remote_code,
        allow_pickle=allow_pickle,
        compile=compile,
        max_length=max_length,
        top_k=top_k,
        aggregation=aggregation,
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        do_sample=do_sample,
        temperature=temperature,
        top_p=top_p,
        source_lang=source_lang,
        target_lang=target_lang,
        stride=stride,
        max_answer_length=max_answer_length,
        threshold=threshold,
        save_visuals=save_visuals,
        save_raw=save_raw,
        chunk_length=chunk_length,
        language=language,
        return_timestamps=return_timestamps,
        subtask=subtask,
    )
    source = InputSpec(
        texts=tuple(inputs or ()),
        file=file,
        column=column,
        dataset=dataset,
        split=split,
        question=question,
        context=context,
        allow_absolute_paths=allow_absolute_paths,
    )
    run_inference(
        spec,
        opts,
        source,
        output=Path(output) if output else None,
        fmt=fmt,
        resume=resume,
        on_error=on_error,
        quiet=quiet,
        smoke=smoke,
    )
