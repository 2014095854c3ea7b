"""Record writers: a table for people, JSON Lines for pipes, files by extension.

File outputs are written under a temporary name and renamed when complete, so a file that
looks complete is complete. JSON Lines are flushed record by record (to `NAME.partial` while
running) so an interrupted run keeps every finished record.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

from tasktool.errors import TaskToolError
from tasktool.io.records import dumps, short, to_jsonable

FORMATS = ("auto", "table", "jsonl", "json", "csv")


def check_output_path(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise TaskToolError(
            f"output folder '{parent}' does not exist", "create it first or choose another --output"
        )
    if not os.access(parent, os.W_OK):
        raise TaskToolError(f"output folder '{parent}' is not writable", "choose another --output")
    if path.is_dir():
        raise TaskToolError(
            f"--output '{path}' is a folder", "give a file name ending in .jsonl, .json or .csv"
        )


class Writer:
    def write(self, record: dict) -> None:
        raise NotImplementedError

    def close(self, complete: bool = True) -> None:
        pass


class JsonLinesWriter(Writer):
    def __init__(self, stream):
        self.stream = stream

    def write(self, record):
        self.stream.write(dumps(record) + "\n")
        self.stream.flush()


class JsonLinesFile(Writer):
    """Writes to NAME.partial as it goes (appending on resume) and renames to NAME when done."""

    def __init__(self, path: Path, append: bool = False):
        self.path = path
        self.partial = partial_path(path)
        if append and path.exists() and not self.partial.exists():
            os.replace(path, self.partial)
        if append and self.partial.exists():
            _drop_cut_line(self.partial)
        self.fh = open(self.partial, "a" if append else "w", encoding="utf-8")

    def write(self, record):
        self.fh.write(dumps(record) + "\n")
        self.fh.flush()

    def close(self, complete=True):
        self.fh.close()
        if complete:
            os.replace(self.partial, self.path)


def _drop_cut_line(path: Path) -> None:
    """A kill can cut the last line short: drop it so appended records start on a fresh line."""
    with open(path, "rb+") as fh:
        data = fh.read()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            fh.truncate(end)


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


class BufferedFile(Writer):
    """JSON or CSV: collected, then written to a temporary file and renamed."""

    def __init__(self, path: Path, fmt: str):
        self.path, self.fmt, self.records = path, fmt, []

    def write(self, record):
        self.records.append(to_jsonable(record))

    def close(self, complete=True):
        if not complete:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            _dump(self.records, self.fmt, fh)
        os.replace(tmp, self.path)


def _dump(records: list[dict], fmt: str, fh) -> None:
    if fmt == "json":
        json.dump(records, fh, ensure_ascii=False, indent=2)
        fh.write("\n")
        return
    columns: list[str] = []
    for rec in records:
        columns += [k for k in rec if k not in columns]
    out = csv.DictWriter(fh, fieldnames=columns)
    out.writeheader()
    for rec in records:
        out.writerow(
            {k: v if isinstance(v, (str, int, float)) or v is None else json.dumps(v) for k, v in rec.items()}
        )


class BufferedStream(BufferedFile):
    """--format json|csv on stdout: one JSON array (or one CSV table) once the run is complete."""

    def __init__(self, stream, fmt: str):
        self.stream, self.fmt, self.records = stream, fmt, []

    def close(self, complete=True):
        if complete:
            _dump(self.records, self.fmt, self.stream)
            self.stream.flush()


class TableWriter(Writer):
    """A rich table on the terminal, printed when the run ends."""

    def __init__(self, title: str, display):
        self.title, self.display, self.rows = title, display, []

    def write(self, record):
        shown = {"id": str(record.get("id")), "input": short(record.get("input"), 60)}
        if "error" in record:
            shown["error"] = str(record["error"])
        else:
            shown.update(self.display(record))
        self.rows.append(shown)

    def close(self, complete=True):
        from rich.console import Console
        from rich.table import Table

        table = Table(title=self.title, show_lines=False)
        columns: list[str] = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in self.rows:
            table.add_row(*[row.get(c, "") for c in columns])
        Console().print(table)


class Fanout(Writer):
    def __init__(self, writers):
        self.writers = writers

    def write(self, record):
        for w in self.writers:
            w.write(record)

    def close(self, complete=True):
        for w in self.writers:
            w.close(complete)


def open_writers(output: Path | None, fmt: str, title: str, display, resume: bool = False) -> Writer:
    """Writers for --output/--format: a file by its extension, and stdout (table on a terminal)."""
    if fmt not in (*FORMATS, "none"):
        raise TaskToolError(f"unknown --format '{fmt}'", f"use one of {', '.join(FORMATS)}")
    writers: list[Writer] = []
    if output is not None:
        check_output_path(output)
        suffix = output.suffix.lower()
        if suffix == ".jsonl":
            writers.append(JsonLinesFile(output, append=resume))
        elif suffix in (".json", ".csv"):
            if resume:
                raise TaskToolError("--resume needs a .jsonl --output", "write JSON Lines to resume")
            writers.append(BufferedFile(output, suffix[1:]))
        else:
            raise TaskToolError(
                f"unknown output type '{output.suffix}' for '{output}'", "use .jsonl, .json or .csv"
            )
    if fmt == "auto":
        fmt = "none" if output is not None else ("table" if sys.stdout.isatty() else "jsonl")
    # "none" (the Python API): nothing on stdout
    if fmt == "table":
        writers.append(TableWriter(title, display))
    elif fmt == "jsonl":
        writers.append(JsonLinesWriter(sys.stdout))
    elif fmt in ("json", "csv"):
        writers.append(BufferedStream(sys.stdout, fmt))
    return Fanout(writers)


def is_stdout(output) -> bool:
    """`--output -` means stdout, as in most command-line tools."""
    return output is not None and str(output) == "-"
