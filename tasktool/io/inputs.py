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
from tasktool.io.columns import as_text, field, pick
from tasktool.io.kinds import AUDIO, IMAGE, PAIR
from tasktool.io.media import PATH_COLUMNS, expand, manifest_path
from tasktool.io.readers import read_rows, read_stream, stream_dataset
from tasktool.io.records import Item

TEXT_COLUMNS = ("text", "sentence", "input", "prompt", "document", "content", "source", "src", "inputs")
CHAT_COLUMNS = ("messages", "conversations", "conversation")  # chat data: lists of {role, content}
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
    # QA records: "once" (a context's text in the first record that uses it, its context_id in every
    # record), "full" (the text in every record) or "id" (the context_id alone)
    context_in_records: str = "once"


CONTEXT_IN_RECORDS = ("once", "full", "id")


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


def _item(n: int, given, payload) -> Item:
    """An Item whose id is the row's own `id` (marked as given) or else its row number."""
    if given is None:
        return Item(n, payload)
    return Item(given, payload, meta={"given_id": True})


def text_items(spec: InputSpec) -> Iterator[Item]:
    """One text per row; a conversation (a list of {role, content} messages, e.g. a `messages` column)
    passes through as that list, shown by its last message."""
    column = None
    for n, (given, row) in enumerate(raw_rows(spec)):
        if isinstance(row, dict):
            column = column or pick(row, spec.column, TEXT_COLUMNS + CHAT_COLUMNS, "text", single_ok=True)
            value = field(row, column)
        else:
            value = row
        if is_conversation(value):
            last = value[-1].get("content")
            item = _item(n, given, list(value))
            item.display = last if isinstance(last, str) else None
            yield item
            continue
        yield _item(n, given, as_text(value))


def is_conversation(value) -> bool:
    """A chat conversation: a non-empty list of dicts that each have a role."""
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


def pair_items(spec: InputSpec) -> Iterator[Item]:
    """Question+context pairs; the records show each context once (see InputSpec.context_in_records)."""
    if spec.context_in_records not in CONTEXT_IN_RECORDS:
        raise TaskToolError(
            f"invalid --context-in-records '{spec.context_in_records}'",
            f"choose one of {', '.join(CONTEXT_IN_RECORDS)}",
        )
    seen: set[str] = set()
    for item in _pairs(spec):
        context = item.payload["context"]
        key = context_id(context)
        shown = {"question": item.payload["question"], "context_id": key}
        if spec.context_in_records == "full" or (spec.context_in_records == "once" and key not in seen):
            shown["context"] = context
        seen.add(key)
        item.display = shown
        yield item


def context_id(context: str) -> str:
    """A short, stable name for a context (the same text gets the same id in every run)."""
    import hashlib

    return hashlib.sha1(context.encode("utf-8")).hexdigest()[:12]


def _pairs(spec: InputSpec) -> Iterator[Item]:
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
        yield _item(n, given, payload)


def _text(row: dict, column: str) -> str:
    return as_text(field(row, column))


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
            yield _item(n, given, value)
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
        yield _item(n, given, manifest_path(as_text(value), base, where, spec.allow_absolute_paths))


def items_for(kind: str, spec: InputSpec) -> Iterator[Item]:
    """The engine's input stream for a task's input kind."""
    if kind == PAIR:
        return pair_items(spec)
    if kind in (AUDIO, IMAGE):
        return media_items(kind, spec)
    return text_items(spec)


def count_inputs(kind: str, spec: InputSpec) -> int | None:
    """How many items `items_for` will yield, where that is cheap to know; None for stdin, streamed
    datasets and formats that would have to be parsed whole (a progress bar's total, nothing more)."""
    from tasktool.io.media import expand
    from tasktool.io.readers import count_rows, dataset_size

    if spec.file:
        return count_rows(spec.file, spec.fmt, spec.delimiter)
    if spec.dataset:
        return dataset_size(spec.dataset, spec.split, spec.dataset_config)
    if kind == PAIR and spec.question and spec.context and not spec.texts:
        return 1
    if not spec.texts or spec.texts == ("-",):
        return None
    if kind in (AUDIO, IMAGE):
        return sum(len(expand(arg, kind)) for arg in spec.texts)
    return len(spec.texts)
