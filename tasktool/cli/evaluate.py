"""`tasktool evaluate`: score a model on labelled data with the same engine and predictor as infer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tasktool.cli.common import (
    AnswersCol,
    ContextCol,
    LabelCol,
    ModelOpt,
    PathCol,
    QuestionCol,
    SourceCol,
    TagsCol,
    TargetCol,
    TaskArg,
    TextCol,
    TextPairCol,
    TokensCol,
    TranscriptionCol,
    column_map,
)

HELP = """Score a model on labelled data: the task's metric, as a table (JSON with --output).

Predictions come from the same engine and predictor as `tasktool infer`.

Examples:

  tasktool evaluate sentiment --model sentiment-model --data test.csv

  tasktool evaluate ner --model ner-model --data dev.conll --output metrics.json

  tasktool evaluate qa --model qa-model --data dev.json --predictions preds.jsonl
"""

G_COLS = "Columns"


def evaluate(
    task: TaskArg,
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="Labelled data file, CoNLL file or dataset folder.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="A Hub dataset name or save_to_disk folder (instead of --data).")
    ] = None,
    split: Annotated[str, typer.Option(help="--dataset split.")] = "test",
    model: ModelOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the metrics as JSON to FILE.")
    ] = None,
    predictions: Annotated[
        Path | None, typer.Option(help="Write per-example predictions (JSON Lines) to FILE.")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Inputs per batch.", min=1)] = 32,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, mps.")] = "auto",
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
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Audio/images: stop at an unreadable file instead of skipping it."),
    ] = False,
    allow_absolute_paths: Annotated[
        bool,
        typer.Option(
            "--allow-absolute-paths", help="Manifest paths may be absolute or leave the manifest's folder."
        ),
    ] = False,
    smoke: Annotated[
        bool,
        typer.Option(
            "--smoke", help="Check this command fast: a shrunk random model and the first few examples."
        ),
    ] = False,
):
    import json

    from tasktool.errors import TaskToolError
    from tasktool.tasks.registry import resolve
    from tasktool.training.data import Source
    from tasktool.training.recipe import read_yaml, resolve_recipe

    spec = resolve(task)
    if not spec.trainer:
        raise TaskToolError(f"'evaluate' is not available for task '{spec.name}' yet", "see `tasktool tasks`")
    if bool(data) == bool(dataset):
        raise TaskToolError("give the evaluation data one way: --data FILE or --dataset NAME", "exactly one")
    ref = model or spec.default_model
    recipe = resolve_recipe(spec.name)
    saved = Path(ref).expanduser() / "recipe.yaml"
    if saved.is_file():  # a tasktool-trained folder: evaluate with its own settings (stride, label names)
        recipe.update(read_yaml(saved))
    columns = column_map(locals())
    if strict:
        recipe["strict"] = True
    recipe["allow_absolute_paths"] = allow_absolute_paths  # this command's flag, never the saved recipe's
    trainer = spec.load_trainer()(spec, recipe, columns, quiet=True)
    from tasktool import runtime

    examples = trainer.read(Source(data) if data else Source(dataset, split))
    if smoke:
        from tasktool.smoke import SMOKE_EXAMPLES, shrunk_model, smoke_dir

        examples = examples[:SMOKE_EXAMPLES]
        ref = str(shrunk_model(spec, ref, smoke_dir() / "model"))
    ref = runtime.check_model_ref(ref)
    metrics, records = trainer.evaluate(ref, examples, batch_size=batch_size, device=device)
    if output:
        _atomic_write(output, json.dumps(metrics, indent=2) + "\n")
    if predictions:
        _atomic_write(
            predictions, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
        )
    show_metrics(metrics, f"{spec.name}: {ref} on {data or dataset}")


def _atomic_write(path: Path, text: str) -> None:
    import os

    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def show_metrics(metrics: dict, title: str) -> None:
    """The metrics as a two-column table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console(soft_wrap=True).print(table)


def register(app: typer.Typer) -> None:
    app.command("evaluate", help=HELP, no_args_is_help=True)(evaluate)
