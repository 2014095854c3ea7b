"""The engine's input stream: where the inputs come from (`InputSpec`) -> Items for a task's input kind.

Text tasks read one text per row, question+context tasks a pair, audio/image tasks a path or URL;
columns are picked by io.columns, rows come from io.readers, paths from io.media.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tasktool.errors import TaskToolError
from tasktool.io.columns import field, pick
from tasktool.io.kinds import AUDIO, IMAGE, PAIR
from tasktool.io.media import PATH_COLUMNS, expand, manifest_path
from tasktool.io.readers import read_rows, read_stream, stream_dataset
from tasktool.io.records import Item

TEXT_COLUMNS = ("text", "sentence", "input", "prompt", "document", "content", "source", "src", "inputs")
QUESTION_COLUMNS = ("question", "query", "q")
CONTEXT_COLUMNS = ("context", "passage", "text", "document")


@dataclass
class InputSpec:
    """Where the inputs come from, as given on the command line."""

    texts: tuple[str, ...] = ()
    file: str | None = None
    column: str | None = None
    dataset: str | None = None
    split: str = "test"
    dataset_config: str | None = None
    question: str | None = None
    context: str | None = None
    fmt: str | None = None  # force a file format
    delimiter: str | None = None  # CSV/TSV field separator (default: by the file's suffix)
    allow_absolute_paths: bool = False  # manifest paths may leave the manifest's folder
    rows: list | None = None  # rows given in memory (strings or dicts), e.g. a request's inputs


def raw_rows(spec: InputSpec) -> Iterator[tuple[object, dict | str]]:
    """(given id or None, row) from wherever the inputs come from."""
    sources = sum(
        bool(x) for x in (spec.texts and spec.texts != ("-",), spec.file, spec.dataset, spec.rows is not None)
    )
    if sources > 1:
        raise TaskToolError("give inputs one way: arguments, --file or --dataset", "not several at once")
    if spec.rows is not None:
        rows = iter(spec.rows)
    elif spec.file:
        rows = read_rows(spec.file, spec.fmt, spec.delimiter)
    elif spec.dataset:
        rows = stream_dataset(spec.dataset, spec.split, spec.dataset_config)
    elif spec.texts == ("-",) or (
        not spec.texts and not sys.stdin.isatty() and not (spec.question and spec.context)
    ):
        rows = read_stream(sys.stdin)
    else:
        rows = iter(spec.texts)
    for row in rows:
        given = row.get("id") if isinstance(row, dict) else None
        yield given, row


def text_items(spec: InputSpec) -> Iterator[Item]:
    column = None
    for n, (given, row) in enumerate(raw_rows(spec)):
        if isinstance(row, dict):
            column = column or pick(row, spec.column, TEXT_COLUMNS, "text", single_ok=True)
            value = field(row, column)
        else:
            value = row
        text = "" if value is None else str(value)
        yield Item(n if given is None else given, text)


def pair_items(spec: InputSpec) -> Iterator[Item]:
    """Question+context pairs: from columns, or a fixed --question/--context with the other varying."""
    if spec.question and spec.context and not (spec.texts or spec.file or spec.dataset):
        yield Item(0, {"question": spec.question, "context": spec.context})
        return
    qcol = ccol = None
    for n, (given, row) in enumerate(raw_rows(spec)):
        if isinstance(row, dict):
            if spec.context:
                qcol = qcol or pick(row, spec.column, QUESTION_COLUMNS, "question")
                payload = {"question": _text(row, qcol), "context": spec.context}
            elif spec.question:
                ccol = ccol or pick(row, spec.column, CONTEXT_COLUMNS, "context")
                payload = {"question": spec.question, "context": _text(row, ccol)}
            else:
                qcol = qcol or pick(row, None, QUESTION_COLUMNS, "question")
                ccol = ccol or pick(row, None, CONTEXT_COLUMNS, "context")
                payload = {"question": _text(row, qcol), "context": _text(row, ccol)}
        elif spec.context:
            payload = {"question": row, "context": spec.context}
        elif spec.question:
            payload = {"question": spec.question, "context": row}
        else:
            raise TaskToolError(
                "question answering needs a question and a context",
                "give --context with questions as arguments, --question with contexts, "
                "or a file with question/context columns",
            )
        yield Item(n if given is None else given, payload)


def _text(row: dict, column: str) -> str:
    value = field(row, column)
    return "" if value is None else str(value)


def media_items(kind: str, spec: InputSpec) -> Iterator[Item]:
    """Items whose payload is a path or URL, from arguments, a manifest file, or a dataset column."""
    if spec.file:
        yield from _manifest_items(spec)
        return
    n = 0
    if spec.dataset:
        column = None
        for given, row in raw_rows(spec):
            column = column or pick(row, spec.column, PATH_COLUMNS, "path")
            value = field(row, column)
            if isinstance(value, dict):
                value = value.get("path") or value
            yield Item(n if given is None else given, value)
            n += 1
        return
    for arg in spec.texts:
        for path in expand(arg, kind):
            yield Item(n, path)
            n += 1


def _manifest_items(spec: InputSpec) -> Iterator[Item]:
    base = Path(spec.file).parent
    column = None
    for n, row in enumerate(read_rows(spec.file, spec.fmt, spec.delimiter)):
        if isinstance(row, dict):
            column = column or pick(row, spec.column, PATH_COLUMNS, "path", single_ok=True)
            value, given = field(row, column), row.get("id")
        else:
            value, given = row, None
        if isinstance(value, dict) and "path" in value:  # datasets' Audio/Image(decode=False)
            value = value["path"]
        where = f"{spec.file}, row {n + 1}"
        yield Item(
            n if given is None else given, manifest_path(str(value), base, where, spec.allow_absolute_paths)
        )


def items_for(kind: str, spec: InputSpec) -> Iterator[Item]:
    """The engine's input stream for a task's input kind."""
    if kind == PAIR:
        return pair_items(spec)
    if kind in (AUDIO, IMAGE):
        return media_items(kind, spec)
    return text_items(spec)
