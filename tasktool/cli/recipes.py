"""`tasktool recipes list|show`: the per-task YAML defaults that `finetune` starts from."""

from __future__ import annotations

from typing import Annotated

import typer

recipes_app = typer.Typer(help="List the fine-tuning recipes, or show one.", no_args_is_help=True)


@recipes_app.command("list")
def list_recipes():
    """Every task with a recipe: its default checkpoint, metric and key settings."""
    import sys

    from tasktool.recipes import available, file_fields
    from tasktool.training.recipe import read_yaml

    header = ("task", "model", "metric", "epochs", "lr", "batch_size", "max_length")
    rows = []
    for path in available():
        r = read_yaml(path, file_fields(path))
        rows.append(
            (
                path.stem,
                str(r.get("model", "")),
                str(r.get("metric", "")),
                str(r.get("epochs", "")),
                str(r.get("lr", "")),
                str(r.get("batch_size", "")),
                str(r.get("max_length", r.get("block_size", ""))),
            )
        )
    if not sys.stdout.isatty():  # a pipe: one tab-separated line per recipe
        for row in (header, *rows):
            typer.echo("\t".join(row))
        return
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
):
    """The task's recipe as YAML (copy it, edit it, pass it with --recipe)."""
    from tasktool.recipes import recipe_fields, recipe_path
    from tasktool.training.recipe import FIELDS

    path = recipe_path(task)
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
