"""Record writers: a table for people, JSON Lines for pipes, files by extension.

File outputs are written under a temporary name and renamed when complete, so a file that
looks complete is complete. JSON Lines are flushed record by record (to `NAME.partial` while
running) so an interrupted run keeps every finished record; `NAME.partial.meta` beside it holds
the fingerprint of the run's inputs and options, which --resume checks before appending.
CSV cells that a spreadsheet would run as a formula (starting with = + - @, tab or CR) get a
leading apostrophe.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

from tasktool.errors import TaskToolError
from tasktool.io.records import dumps, record_jsonable, short, valid_text

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
    """Writes to NAME.partial as it goes (appending on resume) and renames to NAME when done.

    A fresh run writes `meta` (the run's fingerprint) to NAME.partial.meta first; --resume appends
    only to a partial whose fingerprint the caller has checked. The complete NAME is never read
    or moved back: a resume continues the partial alone."""

    def __init__(self, path: Path, append: bool = False, meta: dict | None = None):
        self.path = path
        self.partial = partial_path(path)
        self.meta = meta_path(path)
        append = append and self.partial.exists()
        if append:
            _drop_cut_line(self.partial)
        else:
            self.meta.unlink(missing_ok=True)  # a partial without its fingerprint can never be resumed
        self.fh = open(self.partial, "a" if append else "w", encoding="utf-8")
        if not append and meta is not None:
            _atomic_json(self.meta, meta)

    def write(self, record):
        self.fh.write(dumps(record) + "\n")
        self.fh.flush()

    def close(self, complete=True):
        self.fh.close()
        if complete:
            os.replace(self.partial, self.path)
            self.meta.unlink(missing_ok=True)


def meta_path(path: Path) -> Path:
    """Beside NAME.partial: the fingerprint of the inputs and options that partial was written for."""
    return path.with_name(path.name + ".partial.meta")


def _atomic_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


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
        self.records.append(record_jsonable(record))

    def close(self, complete=True):
        if not complete:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            _dump(self.records, self.fmt, fh)
        os.replace(tmp, self.path)


def _dump(records: list[dict], fmt: str, fh) -> None:
    if fmt == "json":
        fh.write(valid_text(json.dumps(records, ensure_ascii=False, indent=2)))
        fh.write("\n")
        return
    columns: list[str] = []
    for rec in records:
        columns += [k for k in rec if k not in columns]
    out = csv.DictWriter(fh, fieldnames=[csv_cell(c) for c in columns])
    out.writeheader()
    for rec in records:
        out.writerow({csv_cell(k): csv_cell(v) for k, v in rec.items()})


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """One CSV cell: numbers as numbers, nested values as JSON, and text that a spreadsheet would run
    as a formula (=, +, -, @, tab, CR first: OWASP's CSV-injection list) behind an apostrophe."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = valid_text(text)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


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
        from rich.text import Text

        # Text objects: user text is shown as written, never read as rich markup ("[link=...]")
        table = Table(title=Text(self.title), show_lines=False)
        columns: list[str] = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        for col in columns:
            table.add_column(Text(str(col)), overflow="fold")
        for row in self.rows:
            table.add_row(*[Text(valid_text(str(row.get(c, "")))) for c in columns])
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


def open_writers(
    output: Path | None, fmt: str, title: str, display, resume: bool = False, meta: dict | None = None
) -> Writer:
    """Writers for --output/--format: a file by its extension, and stdout (table on a terminal)."""
    if fmt not in (*FORMATS, "none"):
        raise TaskToolError(f"unknown --format '{fmt}'", f"use one of {', '.join(FORMATS)}")
    writers: list[Writer] = []
    if output is not None:
        check_output_path(output)
        suffix = output.suffix.lower()
        if suffix == ".jsonl":
            writers.append(JsonLinesFile(output, append=resume, meta=meta))
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
