"""`tasktool finetune`: train a model for a task from a recipe, data files and overrides."""

from __future__ import annotations

from typing import Annotated

import typer

from tasktool.cli.common import (
    AnswersCol,
    ContextCol,
    LabelCol,
    ModelOpt,
    PathCol,
    QuestionCol,
    QuietOpt,
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

HELP = """Fine-tune a model for a task; the folder it writes works with `tasktool infer` and `evaluate`.

Settings come from the task's recipe (`tasktool recipes show TASK`), then --recipe FILE, then the
flags, then key=value overrides (e.g. `lr=3e-5 max_length=128`).

Examples:

  tasktool finetune sentiment --data train.csv --output-dir sentiment-model

  tasktool finetune ner --data train.conll --eval-data dev.conll --epochs 5

  tasktool finetune qa --data squad_sample.json --max-steps 200 max_length=256

  tasktool finetune classify --dataset glue --train-split train --eval-split validation
"""

G_DATA, G_COLS, G_TRAIN = "Data", "Columns", "Training"


def finetune(
    task: TaskArg,
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Recipe overrides: key=value ...", show_default=False)
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            "-d",
            help="Training data: .csv/.tsv/.json/.jsonl/.parquet/.txt, CoNLL file, or dataset folder.",
            rich_help_panel=G_DATA,
        ),
    ] = None,
    eval_data: Annotated[
        str | None,
        typer.Option(
            help="Evaluation data (default: a fixed-seed held-out share of --data).", rich_help_panel=G_DATA
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="A Hub dataset name or save_to_disk folder (instead of --data).", rich_help_panel=G_DATA
        ),
    ] = None,
    train_split: Annotated[
        str, typer.Option(help="--dataset split to train on.", rich_help_panel=G_DATA)
    ] = "train",
    eval_split: Annotated[
        str | None,
        typer.Option(help="--dataset split to evaluate on (default: held out).", rich_help_panel=G_DATA),
    ] = None,
    model: ModelOpt = None,
    recipe: Annotated[
        str | None, typer.Option(help="A YAML recipe over the task's defaults.", rich_help_panel=G_TRAIN)
    ] = None,
    output_dir: Annotated[
        str | None,
        typer.Option(
            "--output-dir",
            "-o",
            help="Folder for the model, metrics and logs (default: TASK-finetuned).",
            rich_help_panel=G_TRAIN,
        ),
    ] = None,
    epochs: Annotated[
        float | None, typer.Option(help="Passes over the data.", rich_help_panel=G_TRAIN)
    ] = None,
    max_steps: Annotated[
        int | None,
        typer.Option(help="Stop after N optimizer steps (overrides --epochs).", rich_help_panel=G_TRAIN),
    ] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.", rich_help_panel=G_TRAIN)] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", "-b", help="Training batch size.", rich_help_panel=G_TRAIN)
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Random seed (also picks the held-out split).", rich_help_panel=G_TRAIN)
    ] = None,
    eval_steps: Annotated[
        int | None,
        typer.Option(help="Evaluate every N steps (default: every epoch).", rich_help_panel=G_TRAIN),
    ] = None,
    save_total_limit: Annotated[
        int | None, typer.Option(help="Checkpoints kept while training.", rich_help_panel=G_TRAIN)
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from the last checkpoint in --output-dir.", rich_help_panel=G_TRAIN)
    ] = False,
    quiet: QuietOpt = False,
    smoke: Annotated[
        bool,
        typer.Option(
            "--smoke",
            help="Check this exact command in seconds: same data, columns and recipe, a shrunk random model, "
            "a few examples and steps; output to a temporary folder unless --output-dir.",
            rich_help_panel=G_TRAIN,
        ),
    ] = False,
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
    max_audio_seconds: Annotated[
        float | None,
        typer.Option(
            help="Audio: longer training clips are cut (classification) or left out (ASR).",
            rich_help_panel=G_DATA,
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Audio/images: stop at an unreadable file instead of skipping it.",
            rich_help_panel=G_DATA,
        ),
    ] = False,
    allow_absolute_paths: Annotated[
        bool,
        typer.Option(
            "--allow-absolute-paths",
            help="Audio/images: manifest paths may be absolute or leave the manifest's folder.",
            rich_help_panel=G_DATA,
        ),
    ] = False,
):
    from tasktool.errors import TaskToolError
    from tasktool.tasks.registry import resolve
    from tasktool.training.recipe import resolve_recipe

    spec = resolve(task)
    if not spec.trainer:
        raise TaskToolError(f"'finetune' is not available for task '{spec.name}' yet", "see `tasktool tasks`")
    if data and dataset:
        raise TaskToolError("give the training data one way: --data or --dataset", "not both")
    if not data and not dataset:
        raise TaskToolError("no training data", "pass --data FILE or --dataset NAME")
    flags = {
        "epochs": epochs,
        "max_steps": max_steps,
        "lr": lr,
        "batch_size": batch_size,
        "seed": seed,
        "eval_steps": eval_steps,
        "save_total_limit": save_total_limit,
    }
    flags.update(max_audio_seconds=max_audio_seconds, strict=True if strict else None)
    flags["allow_absolute_paths"] = True if allow_absolute_paths else None
    resolved = resolve_recipe(spec.name, recipe, flags, list(overrides or []))
    columns = column_map(locals())
    from tasktool.training.data import Source

    train_src = Source(data) if data else Source(dataset, train_split)
    eval_src = (
        Source(eval_data) if eval_data else (Source(dataset, eval_split) if dataset and eval_split else None)
    )
    if smoke:
        from tasktool.smoke import shrunk_model, smoke_dir, smoke_recipe

        tmp = smoke_dir(keep=not output_dir)  # a smoke run's output stays for a look
        smoke_recipe(resolved)
        base = model or resolved.get("model") or spec.default_model
        model = str(shrunk_model(spec, base, tmp / "model", resolved.get("revision")))
        output_dir = output_dir or str(tmp / "output")
    trainer = spec.load_trainer()(spec, resolved, columns, quiet=quiet)
    out = output_dir or f"{spec.name}-finetuned"
    summary = trainer.run(train_src, eval_src, out, model=model, resume=resume)
    from tasktool.cli.evaluate import show_metrics

    show_metrics(summary["eval"], f"{spec.name}: {out} (evaluated on {summary['eval_data']})")
    if not quiet:
        from tasktool.console import info

        info(f"saved to {out}/ (metrics.json, train_log.jsonl, loss_curve.png, README.md, recipe.yaml)")
        info(f'try: tasktool infer {spec.name} --model {out} "..."')


def register(app: typer.Typer) -> None:
    app.command("finetune", help=HELP, no_args_is_help=True)(finetune)
