"""Option types shared by several commands (Annotated, as in huggingface_hub's CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

FormatOpt = Annotated[
    str,
    typer.Option(
        "--format", help="auto (a table on a terminal, JSON Lines on a pipe), table, jsonl, json, csv."
    ),
]
TaskArg = Annotated[
    str, typer.Argument(help="Task name or alias (see `tasktool tasks`).", show_default=False)
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Local folder or Hub id. Default: the task's default model."),
]
RevisionOpt = Annotated[str | None, typer.Option(help="Hub revision (branch, tag or commit) of --model.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda, mps (auto lets accelerate choose).")]
DtypeOpt = Annotated[
    str, typer.Option(help="auto (fp32 on CPU, bf16/fp16 on GPU), float32, bfloat16, float16.")
]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", help="Inputs per batch.", min=1)]
TrustOpt = Annotated[
    bool,
    typer.Option("--trust-remote-code", help="Run model code from the Hub repository (off: it is code)."),
]
PickleOpt = Annotated[
    bool,
    typer.Option(
        "--allow-pickle",
        help="Load pickle (.bin) weights; off: unpickling can run code. safetensors need no flag.",
    ),
]
AbsPathsOpt = Annotated[
    bool,
    typer.Option(
        "--allow-absolute-paths",
        help="Let a manifest's file paths be absolute or point outside the manifest's folder.",
    ),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write records to FILE (.jsonl, .json or .csv by extension)."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]


def check_choice(name: str, value: str, choices) -> str:
    from tasktool.errors import TaskToolError, nearest

    if value not in choices:
        guess = nearest(value, choices)
        hint = f"did you mean '{guess[0]}'? " if guess else ""
        raise TaskToolError(f"invalid {name} '{value}'", f"{hint}choose one of {', '.join(choices)}")
    return value
