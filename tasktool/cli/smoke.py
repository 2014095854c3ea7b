"""`tasktool smoke`: every task's fine-tune → reload → infer → evaluate path, offline, in seconds."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from tasktool.cli.common import FormatOpt

HELP = """Check that every task works end to end on this machine, offline, with tiny random models.

For each task: build a tiny model of the task's default architecture, fine-tune a few steps on a
built-in sample (where the task supports fine-tuning), reload it, run `infer` and `evaluate`.
Exits 1 if any task fails. For your own data and recipe, add --smoke to finetune/infer/evaluate.

Examples:

  tasktool smoke

  tasktool smoke ner qa --format jsonl
"""


def smoke(
    tasks: Annotated[
        list[str] | None, typer.Argument(help="Tasks to check (default: all).", show_default=False)
    ] = None,
    keep: Annotated[Path | None, typer.Option(help="Keep the models and outputs in this folder.")] = None,
    fmt: FormatOpt = "auto",
):
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # smoke never reaches for the network
    from tasktool.errors import FAILURE
    from tasktool.smoke import run_smoke

    rows = run_smoke(list(tasks or []), keep)
    if fmt in ("jsonl", "json") or (fmt == "auto" and not sys.stdout.isatty()):
        for row in rows:
            print(json.dumps(row))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="tasktool smoke")
        for col in ("task", "result", "seconds", "stages / error"):
            table.add_column(col, overflow="fold")
        for row in rows:
            detail = row.get("error") or "  ".join(
                f"{k} {v:.1f}s" for k, v in row["stages"].items() if k != "total"
            )
            table.add_row(
                row["task"],
                "[green]pass[/green]" if row["ok"] else "[red]FAIL[/red]",
                f"{row['seconds']:.1f}",
                detail,
            )
        Console().print(table)
        total = sum(r["seconds"] for r in rows)
        Console().print(f"{sum(r['ok'] for r in rows)}/{len(rows)} tasks passed in {total:.1f} s")
    if not all(r["ok"] for r in rows):
        raise typer.Exit(FAILURE)


def register(app: typer.Typer) -> None:
    app.command("smoke", help=HELP)(smoke)
