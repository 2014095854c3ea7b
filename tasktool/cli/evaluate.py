"""`tasktool evaluate`: score a model on labelled data with the same engine and predictor as infer."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from tasktool.cli.common import (
    TASK_FLAGS,
    AnswersCol,
    ContextCol,
    LabelCol,
    ModelOpt,
    PathCol,
    PickleOpt,
    QuestionCol,
    SourceCol,
    TagsCol,
    TargetCol,
    TaskArg,
    TextCol,
    TextPairCol,
    TokensCol,
    TranscriptionCol,
    TrustOpt,
    column_map,
    flag_overrides,
    option,
)
from tasktool.cli.infer import RecheckOpt

HELP = """Score a model on labelled data: the task's metric, as a table on a terminal, JSON on a pipe.

Predictions come from the same engine and predictor as `tasktool infer`. Recipe keys (a task's own
included, `tasktool recipes show TASK --keys`) may follow as flags or key=value: `--ignore-index 0`.
Bounded metrics (accuracy, F1, exact match, ROUGE, BLEU, chrF, WER, ...) are on a 0-1 scale; loss
and perplexity are not bounded.

Examples:

  tasktool evaluate sentiment --model sentiment-model --data test.csv

  tasktool evaluate ner --model ner-model --data dev.conll --output metrics.json

  tasktool evaluate qa --model qa-model --data dev.json --predictions preds.jsonl

  tasktool evaluate sentiment --model m/ --data test.csv | jq .accuracy
"""

DataOpt = option(str | None, "Labelled data file, CoNLL file or dataset folder.", None, "--data", "-d")
DatasetOpt = option(str | None, "A Hub dataset name or save_to_disk folder (instead of --data).")
SplitOpt = option(str, "--dataset split.")
DatasetConfigOpt = option(str | None, "--dataset configuration (e.g. --dataset glue --dataset-config mrpc).")
DelimiterOpt = option(str | None, "CSV field separator: one character, or tab/pipe/semicolon.")
MetricsOpt = option(Path | None, "Write the metrics as JSON to FILE (- for stdout).", None, "--output", "-o")
FormatOpt = option(str, "auto (a table on a terminal, JSON on a pipe), table, json, jsonl.", None, "--format")
QuietOpt = option(bool, "Nothing on stderr but errors.", None, "--quiet", "-q")
KeepOpt = option(bool, "--smoke: keep the shrunk model instead of removing it.", None, "--keep")
PredictionsOpt = option(Path | None, "Write per-example predictions (JSON Lines) to FILE.")
EvalBatchOpt = option(int, "Inputs per batch.", None, "--batch-size", "-b", min=1)
EvalDeviceOpt = option(str, "auto, cpu, cuda, mps.")
StrictOpt = option(bool, "Audio/images: stop at an unreadable file instead of skipping it.", None, "--strict")
OutsideOpt = option(
    bool, "Manifest paths may be absolute or leave the manifest's folder.", None, "--allow-absolute-paths"
)
SmokeOpt = option(
    bool, "Check this command fast: a shrunk random model and the first few examples.", None, "--smoke"
)
ChatTemplateOpt = option(
    str | None, "Chat data: a Jinja chat template FILE for a tokenizer without one.", None, "--chat-template"
)


def evaluate(
    ctx: typer.Context,
    task: TaskArg,
    data: DataOpt = None,
    dataset: DatasetOpt = None,
    split: SplitOpt = "test",
    dataset_config: DatasetConfigOpt = None,
    delimiter: DelimiterOpt = None,
    model: ModelOpt = None,
    output: MetricsOpt = None,
    fmt: FormatOpt = "auto",
    quiet: QuietOpt = False,
    predictions: PredictionsOpt = None,
    batch_size: EvalBatchOpt = 32,
    device: EvalDeviceOpt = "auto",
    text_column: TextCol = None,
    text_pair_column: TextPairCol = None,
    label_column: LabelCol = None,
    tokens_column: TokensCol = None,
    tags_column: TagsCol = None,
    question_column: QuestionCol = None,
    context_column: ContextCol = None,
    answers_column: AnswersCol = None,
    source_column: SourceCol = None,
    target_column: TargetCol = None,
    path_column: PathCol = None,
    transcription_column: TranscriptionCol = None,
    strict: StrictOpt = False,
    allow_absolute_paths: OutsideOpt = False,
    smoke: SmokeOpt = False,
    chat_template: ChatTemplateOpt = None,
    allow_pickle: PickleOpt = False,
    trust_remote_code: TrustOpt = False,
    keep: KeepOpt = False,
    recheck_margin: RecheckOpt = None,
):
    import json

    from tasktool import api
    from tasktool.cli.common import check_choice, output_format, plain_json
    from tasktool.io.records import record_jsonable, valid_text
    from tasktool.runtime import DEVICES
    from tasktool.tasks.registry import resolve

    spec = resolve(task)
    fmt = output_format(fmt, METRIC_FORMATS)  # checked before any model loads
    if quiet:
        from tasktool.console import set_quiet

        set_quiet(True)
    check_choice("--device", device, DEVICES)
    columns = column_map(locals())
    to_stdout = output is not None and str(output) == "-"
    # the output paths are checked (and locked) before the evaluation, not after it
    locks = _claim_outputs(
        {"--output": None if to_stdout else output, "--predictions": predictions},
        [("data", data), ("dataset", dataset), ("model folder", model)],
    )
    try:
        metrics, records = api.evaluate(
            spec.name,
            model,
            data,
            dataset=dataset,
            split=split,
            dataset_config=dataset_config,
            delimiter=delimiter,
            batch_size=batch_size,
            device=device,
            columns=columns,
            strict=strict,
            allow_absolute_paths=allow_absolute_paths,
            smoke=smoke,
            keep=keep,
            return_predictions=True,
            allow_pickle=allow_pickle,
            trust_remote_code=trust_remote_code,
            chat_template=chat_template,
            overrides=flag_overrides(list(ctx.args)),
            recheck_margin=recheck_margin,
        )
        if output and not to_stdout:  # JSON has no NaN: a metric that is not a number is written as null
            _atomic_write(output, json.dumps(plain_json(metrics), indent=2) + "\n")
        if predictions:
            _atomic_write(
                predictions,
                "".join(
                    valid_text(json.dumps(record_jsonable(r), ensure_ascii=False, default=str)) + "\n"
                    for r in records
                ),
            )
    finally:
        for lock in locks:
            lock.release()
    title = f"{spec.name}: {model or spec.default_model} on {data or dataset}"
    show_metrics(metrics, title, "json" if to_stdout and fmt == "table" else fmt)


def _claim_outputs(outputs: dict, inputs: list) -> list:
    """Check each output path (its folder, not an input, not the other output) and lock it."""
    from tasktool.errors import TaskToolError
    from tasktool.io.outputs import OutputLock, real, refuse_overlap

    given = {flag: Path(path) for flag, path in outputs.items() if path}
    if len(given) == 2 and real(given["--output"]) == real(given["--predictions"]):
        raise TaskToolError("--output and --predictions name the same file", "give each its own file")
    for flag, path in given.items():
        if path.is_dir():
            raise TaskToolError(f"{flag} '{path}' is a folder", "give a file name")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TaskToolError(
                f"cannot create the folder of {flag} '{path}': {exc.strerror}", f"choose another {flag}"
            ) from exc
        if not os.access(path.parent, os.W_OK):
            raise TaskToolError(f"the folder of {flag} '{path}' is not writable", f"choose another {flag}")
        refuse_overlap(path, flag, inputs)
    locks = []
    try:
        for flag, path in given.items():
            locks.append(OutputLock(path, flag).acquire())
    except BaseException:
        for lock in locks:
            lock.release()
        raise
    return locks


def _atomic_write(path: Path, text: str) -> None:
    import os

    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


METRIC_FORMATS = ("auto", "table", "json", "jsonl")


def show_metrics(metrics: dict, title: str, fmt: str = "table") -> None:
    """The metrics on stdout: a two-column table (names and paths shown as written, never read as rich
    markup), or one JSON object (json, jsonl: a pipe's default)."""
    if fmt in ("json", "jsonl"):
        from tasktool.cli.common import print_json

        print_json(metrics, fmt)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title), title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(Text(str(key)), Text(f"{value:.4f}" if isinstance(value, float) else str(value)))
    Console(soft_wrap=True).print(table)


def register(app: typer.Typer) -> None:
    app.command("evaluate", help=HELP, no_args_is_help=True, context_settings=TASK_FLAGS)(evaluate)
