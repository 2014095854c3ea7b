"""`tasktool merge`: a LoRA adapter folder + its base model -> one plain model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

HELP = """Merge a LoRA adapter into its base model and save a plain model (no peft needed to load it).

The base model is the one the adapter's adapter_config.json names (a local folder or a Hub id).

Examples:

  tasktool merge chat-adapter/ -o chat-merged/

  tasktool infer generate --model chat-merged/ --chat "Hello"
"""


def merge(
    adapter_dir: Annotated[
        Path, typer.Argument(help="Adapter folder (adapter_config.json).", show_default=False)
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for the merged model.", show_default=False)
    ],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No message when done.")] = False,
):
    from tasktool import api

    out = api.merge(adapter_dir, output)
    if not quiet:
        from tasktool.console import info

        info(f"merged model saved to {out}/")


def register(app: typer.Typer) -> None:
    app.command("merge", help=HELP, no_args_is_help=True)(merge)
