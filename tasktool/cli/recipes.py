"""`tasktool recipes list|show`: the per-task YAML defaults that `finetune` starts from."""

from __future__ import annotations

from typing import Annotated

import typer

from tasktool.cli.common import FormatOpt

recipes_app = typer.Typer(help="List the fine-tuning recipes, or show one.", no_args_is_help=True)


@recipes_app.command("list")
def list_recipes(fmt: FormatOpt = "auto"):
    """Every task with a recipe: its default checkpoint, metric and key settings (JSON Lines on a pipe)."""
    from tasktool.cli.common import output_format, print_rows
    from tasktool.recipes import available, file_fields
    from tasktool.training.recipe import read_yaml

    fmt = output_format(fmt, pipe="jsonl")
    header = ("task", "model", "metric", "epochs", "lr", "batch_size", "max_length")
    records = []
    for path in available():
        r = read_yaml(path, file_fields(path))
        values = (r.get(k) for k in ("model", "metric", "epochs", "lr", "batch_size"))
        records.append(
            dict(zip(header, (path.stem, *values, r.get("max_length", r.get("block_size"))), strict=True))
        )
    if fmt != "table":
        print_rows(records, fmt)
        return
    rows = [tuple("" if v is None else str(v) for v in rec.values()) for rec in records]
    from rich.console import Console
    from rich.table import Table

    table = Table(title="recipes (tasktool recipes show TASK)", title_justify="left")
    for col in header:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    Console(soft_wrap=True).print(table)


@recipes_app.command("show")
def show_recipe(
    task: Annotated[str, typer.Argument(help="Task name or alias.", show_default=False)],
    keys: Annotated[
        bool, typer.Option("--keys", help="List every recipe key with its type and meaning.")
    ] = False,
    fmt: FormatOpt = "auto",
):
    """The task's recipe as YAML (copy it, edit it, pass it with --recipe); --format json: as JSON."""
    from tasktool.cli.common import GLOBAL, check_choice, print_json
    from tasktool.recipes import file_fields, recipe_fields, recipe_path
    from tasktool.training.recipe import FIELDS, read_yaml

    fmt = GLOBAL["format"] or fmt
    check_choice("--format", fmt, ("auto", "table", "yaml", "json", "jsonl"))
    path = recipe_path(task)
    if fmt in ("json", "jsonl"):
        print_json(read_yaml(path, file_fields(path)), fmt)
        return
    typer.echo(f"# {path}")
    typer.echo(path.read_text(encoding="utf-8").rstrip())
    if keys:
        typer.echo("\n# all keys:")
        for key, (kind, text) in FIELDS.items():
            typer.echo(f"#   {key} ({kind.__name__}): {text}")
        own = {k: v for k, v in recipe_fields(task).items() if k not in FIELDS}
        if own:
            typer.echo("\n# this task's own keys (also flags: --key-name VALUE):")
            for key, (kind, text) in own.items():
                typer.echo(f"#   {key} ({kind.__name__}): {text}")


def register(app: typer.Typer) -> None:
    app.add_typer(recipes_app, name="recipes")
