"""Option types shared by several commands (Annotated, as in huggingface_hub's CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        help="auto (a table on a terminal, JSON Lines on a pipe), table, jsonl, json, csv. "
        "Anywhere on the line.",
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
BatchOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        "-b",
        help="Inputs per batch (default 8; 32 for generation, summarization, translation; classification and NER on a CPU: 64, within 1,024 padded tokens).",
        min=1,
    ),
]
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
    typer.Option(
        "--output", "-o", help="Write records to FILE (.jsonl, .json or .csv by extension); - for stdout."
    ),
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="Nothing on stderr but errors (no progress, no notes).")
]


def option(kind, help_text: str, panel: str | None = None, *names: str, **extra):
    """An Annotated option type, so a command's signature holds one line per option."""
    return Annotated[kind, typer.Option(*names, help=help_text, rich_help_panel=panel, **extra)]


def check_choice(name: str, value: str, choices) -> str:
    from tasktool.errors import TaskToolError, nearest

    if value not in choices:
        guess = nearest(value, choices)
        hint = f"did you mean '{guess[0]}'? " if guess else ""
        raise TaskToolError(f"invalid {name} '{value}'", f"{hint}choose one of {', '.join(choices)}")
    return value


# Column options shared by finetune and evaluate (one declaration, one mapping).
def _column(help_text: str):
    return Annotated[str | None, typer.Option(help=help_text, rich_help_panel="Columns")]


TextCol = _column("Classification: text column (default sentence/text).")
TextPairCol = _column("Classification: second text of a pair (default sentence2).")
LabelCol = _column("Classification: label column (default label).")
TokensCol = _column("NER: token list column (default tokens/words).")
TagsCol = _column("NER: tag list column (default ner_tags/ner).")
QuestionCol = _column("QA: question column (default question).")
ContextCol = _column("QA: context column (default context).")
AnswersCol = _column("QA: answers column ({text, answer_start}; default answers).")
SourceCol = _column("Seq2seq: source text column (default document/source).")
TargetCol = _column(
    "Seq2seq: target text column (default summary/target); vision: the mask, map or objects column."
)
PathCol = _column("Audio/images: file column of a manifest (default file_name/path).")
TranscriptionCol = _column("ASR: transcription column (default transcription/text).")

COLUMN_ROLES = (
    "text",
    "text_pair",
    "label",
    "tokens",
    "tags",
    "question",
    "context",
    "answers",
    "source",
    "target",
    "path",
    "transcription",
)


def column_map(params: dict) -> dict[str, str | None]:
    """The --X-column flags of a command, keyed by role (text, label, tokens, ...)."""
    return {role: params.get(f"{role}_column") for role in COLUMN_ROLES}


# Recipe keys as flags: `--ignore-index 0` means `ignore_index=0` (a task's own keys need no option here).
TASK_FLAGS = {"ignore_unknown_options": True, "allow_extra_args": True}


def flag_overrides(words: list[str]) -> list[str]:
    """Command-line words -> key=value overrides: `--key-name VALUE` and `--key-name=VALUE` become
    `key_name=VALUE`; a `--flag` with no value (last, or before another flag) means true."""
    from tasktool.errors import TaskToolError

    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--") and len(word) > 2:
            key, sep, value = word[2:].partition("=")
            if not sep:
                following = words[i + 1] if i + 1 < len(words) else None
                if following is None or following.startswith("--") or "=" in following:
                    value = "true"
                else:
                    value, i = following, i + 1
            out.append(f"{key.replace('-', '_')}={value}")
        elif word.startswith("-") and not _number(word):
            raise TaskToolError(f"no such option: {word}", "see --help")
        else:
            out.append(word)
        i += 1
    return out


def _number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------- global flags and machine output

FORMATS = ("auto", "table", "jsonl", "json", "csv")
# --debug / --quiet / --format, wherever they were given on the line (cli/app.py moves them to the root)
GLOBAL: dict = {"debug": False, "quiet": False, "format": None}


def output_format(local: str = "auto", allowed=FORMATS, pipe: str = "json") -> str:
    """The --format in force, checked before anything runs; 'auto' is a table on a terminal and `pipe`
    (JSON for one document, JSON Lines for lists) on a pipe."""
    import sys

    fmt = GLOBAL["format"] or local or "auto"
    check_choice("--format", fmt, allowed)
    if fmt == "auto":
        return "table" if sys.stdout.isatty() else pipe
    return fmt


def is_quiet(local: bool = False) -> bool:
    return bool(local or GLOBAL["quiet"])


def plain_json(value):
    """Metrics and summaries as strict JSON: NaN/inf become null (json.dumps would write NaN)."""
    import math

    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_json(value, fmt: str = "json") -> None:
    """One JSON document on stdout: indented for --format json on a terminal, else one line."""
    import json
    import sys

    indent = 2 if fmt == "json" and sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(plain_json(value), indent=indent, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def print_rows(rows: list[dict], fmt: str) -> None:
    """Rows for a pipe: JSON Lines (jsonl), one JSON array (json) or CSV."""
    import json
    import sys

    if fmt == "jsonl":
        for row in rows:
            sys.stdout.write(json.dumps(plain_json(row), ensure_ascii=False, default=str) + "\n")
    elif fmt == "csv":
        import csv

        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        out = csv.DictWriter(sys.stdout, fieldnames=columns)
        out.writeheader()
        for row in rows:
            out.writerow(
                {
                    k: v if isinstance(v, (str, int, float)) or v is None else json.dumps(v)
                    for k, v in row.items()
                }
            )
    else:
        print_json(rows, fmt)
    sys.stdout.flush()
