"""Input readers: literal arguments, files (txt/jsonl/json/csv/tsv/parquet), stdin and datasets.

Each reader yields rows lazily (dicts), and `items()` turns rows into engine Items for a task's
input kind. Missing files, unknown formats and missing columns are one-line errors.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tasktool.engine import Item
from tasktool.errors import TaskToolError, nearest

TABLE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt")
TEXT_COLUMNS = ("text", "sentence", "input", "prompt", "document", "content", "source", "src", "inputs")
PATH_COLUMNS = ("path", "file", "file_name", "filename", "audio", "image", "filepath")


@dataclass
class InputSpec:
    """Where the inputs come from, as given on the command line."""

    texts: tuple[str, ...] = ()
    file: str | None = None
    column: str | None = None
    dataset: str | None = None
    split: str = "test"
    question: str | None = None
    context: str | None = None
    fmt: str | None = None  # force a file format
    allow_absolute_paths: bool = False  # manifest paths may leave the manifest's folder


def _bad_file(path: Path) -> None:
    if str(path) == "-":
        return
    if not path.exists():
        raise TaskToolError(f"input file '{path}' not found", "check the path")
    if path.is_dir():
        raise TaskToolError(f"input file '{path}' is a folder", "give a file, or the folder as an argument")


def _decode_error(path, exc) -> TaskToolError:
    return TaskToolError(f"cannot read '{path}': {exc}", "save the file as UTF-8 text")


def read_rows(path: str | Path, fmt: str | None = None) -> Iterator[dict | str]:
    """Rows of a file, lazily: dicts for tables, strings for plain text lines."""
    path = Path(path)
    _bad_file(path)
    suffix = (fmt and "." + fmt.lstrip(".")) or path.suffix.lower()
    if str(path) == "-":
        yield from read_stream(sys.stdin)
        return
    try:
        if suffix == ".txt" or suffix not in TABLE_SUFFIXES:
            if suffix not in (".txt", ".text", ".md", ""):
                raise TaskToolError(
                    f"unsupported input file type '{path.suffix}' for '{path}'",
                    f"use one of {', '.join(TABLE_SUFFIXES)}",
                )
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    line = line.rstrip("\r\n")
                    if line.strip():
                        yield line
        elif suffix == ".jsonl":
            with open(path, encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if line.strip():
                        yield _json_line(line, path, n)
        elif suffix == ".json":
            yield from _json_rows(path)
        elif suffix in (".csv", ".tsv"):
            with open(path, encoding="utf-8", newline="") as fh:
                reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
                if not reader.fieldnames:
                    return
                for row in reader:
                    yield {k: v for k, v in row.items() if k is not None}
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            try:
                table = pq.ParquetFile(path)
            except Exception as exc:  # noqa: BLE001 - pyarrow raises many types
                raise TaskToolError(f"cannot read parquet file '{path}': {exc}", "check the file") from exc
            for batch in table.iter_batches(batch_size=1024):
                yield from batch.to_pylist()
    except UnicodeDecodeError as exc:
        raise _decode_error(path, exc) from exc
    except csv.Error as exc:
        raise TaskToolError(
            f"cannot parse '{path}' as {suffix[1:]}: {exc}", "check the delimiter and quoting"
        ) from exc


def _json_line(line: str, path, n: int):
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise TaskToolError(
            f"{path}, line {n}: not valid JSON ({exc.msg})", "one JSON object per line"
        ) from exc


def _json_rows(path: Path) -> Iterator[dict]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        # many '.json' files are really JSON Lines
        with open(path, encoding="utf-8") as fh:
            lines = [ln for ln in fh if ln.strip()]
        if len(lines) > 1:
            for n, line in enumerate(lines, 1):
                yield _json_line(line, path, n)
            return
        raise TaskToolError(
            f"'{path}' is not valid JSON ({exc.msg}, line {exc.lineno})", "check the file"
        ) from exc
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
        if data and isinstance(data[0], dict) and "paragraphs" in data[0]:
            yield from _squad_rows(data)
            return
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise TaskToolError(
            f"'{path}' holds a JSON {type(data).__name__}", "give a list of records or strings"
        )
    yield from data


def _squad_rows(articles: list[dict]) -> Iterator[dict]:
    """Flatten the nested SQuAD format into question/context/answers rows."""
    for article in articles:
        for para in article.get("paragraphs", []):
            for qa in para.get("qas", []):
                answers = qa.get("answers", [])
                yield {
                    "id": qa.get("id"),
                    "question": qa.get("question", ""),
                    "context": para.get("context", ""),
                    "answers": {
                        "text": [a["text"] for a in answers],
                        "answer_start": [a["answer_start"] for a in answers],
                    },
                }


def read_stream(stream) -> Iterator[dict | str]:
    """Stdin: JSON Lines when every line is an object, otherwise one text a line."""
    for n, line in enumerate(stream, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                yield json.loads(line)
                continue
            except json.JSONDecodeError as exc:
                raise TaskToolError(
                    f"stdin, line {n}: not valid JSON ({exc.msg})", "one JSON object per line"
                ) from exc
        yield line


def read_dataset(name: str, split: str) -> Iterator[dict]:
    """A dataset saved with save_to_disk, a data file folder, or a Hub dataset (streamed)."""
    from tasktool.runtime import offline

    path = Path(name).expanduser()
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - a dependency
        raise TaskToolError("the 'datasets' package is missing", "pip install datasets") from exc
    datasets.disable_progress_bars()
    try:
        if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise TaskToolError(
                        f"dataset '{name}' has no split '{split}'", f"splits: {', '.join(ds)}"
                    )
                ds = ds[split]
        else:
            if not path.exists() and offline():
                raise TaskToolError(
                    f"cannot fetch dataset '{name}': the Hugging Face Hub is unreachable (offline)",
                    "save it locally and pass its folder, or pass --file",
                )
            ds = datasets.load_dataset(str(name), split=split, streaming=True)
    except TaskToolError:
        raise
    except ValueError as exc:
        raise TaskToolError(
            f"cannot load split '{split}' of dataset '{name}': {str(exc).splitlines()[0]}", "check --split"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - datasets raises many types
        raise TaskToolError(
            f"cannot load dataset '{name}': {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            "check the name, or pass a local file with --file",
        ) from exc
    yield from ds


def pick_column(row: dict, wanted: str | None, defaults: Iterable[str], what: str = "text") -> str:
    """The column to read: the one asked for, or the first default present; else list what is there."""
    columns = list(row.keys())
    if wanted:
        if wanted in row:
            return wanted
        if "." in wanted:  # nested field, e.g. translation.en
            head = wanted.split(".", 1)[0]
            if head in row:
                return wanted
        guess = nearest(wanted, columns)
        hint = f"did you mean '{guess[0]}'? " if guess else ""
        raise TaskToolError(
            f"column '{wanted}' not found; columns found: {', '.join(columns) or 'none'}",
            f"{hint}choose one with --column",
        )
    for name in defaults:
        if name in row:
            return name
    if len(columns) == 1:
        return columns[0]
    raise TaskToolError(
        f"no {what} column found; columns found: {', '.join(columns) or 'none'}", "choose one with --column"
    )


def get_field(row: dict, column: str):
    if column in row:
        return row[column]
    value = row
    for part in column.split("."):
        if not isinstance(value, dict) or part not in value:
            raise TaskToolError(f"field '{column}' missing in a row", "check --column")
        value = value[part]
    return value


def raw_rows(spec: InputSpec) -> Iterator[tuple[object, dict | str]]:
    """(given id or None, row) from wherever the inputs come from."""
    sources = sum(bool(x) for x in (spec.texts and spec.texts != ("-",), spec.file, spec.dataset))
    if sources > 1:
        raise TaskToolError("give inputs one way: arguments, --file or --dataset", "not several at once")
    if spec.file:
        rows = read_rows(spec.file, spec.fmt)
    elif spec.dataset:
        rows = read_dataset(spec.dataset, spec.split)
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
            column = column or pick_column(row, spec.column, TEXT_COLUMNS)
            value = get_field(row, column)
        else:
            value = row
        text = "" if value is None else str(value)
        yield Item(n if given is None else given, text)


def qa_items(spec: InputSpec) -> Iterator[Item]:
    """Question+context pairs: from columns, or a fixed --question/--context with the other varying."""
    if spec.question and spec.context and not (spec.texts or spec.file or spec.dataset):
        yield Item(0, {"question": spec.question, "context": spec.context})
        return
    qcol = ccol = None
    for n, (given, row) in enumerate(raw_rows(spec)):
        if isinstance(row, dict):
            if spec.context:
                qcol = qcol or pick_column(row, spec.column, ("question", "query", "q"), "question")
                payload = {"question": str(get_field(row, qcol)), "context": spec.context}
            elif spec.question:
                ccol = ccol or pick_column(
                    row, spec.column, ("context", "passage", "text", "document"), "context"
                )
                payload = {"question": spec.question, "context": str(get_field(row, ccol))}
            else:
                qcol = qcol or pick_column(row, None, ("question", "query", "q"), "question")
                ccol = ccol or pick_column(row, None, ("context", "passage", "text", "document"), "context")
                payload = {"question": str(get_field(row, qcol)), "context": str(get_field(row, ccol))}
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


def items_for(kind: str, spec: InputSpec) -> Iterator[Item]:
    """The engine's input stream for a task's input kind."""
    from tasktool.tasks.registry import AUDIO, IMAGE, QA

    if kind == QA:
        return qa_items(spec)
    if kind in (AUDIO, IMAGE):
        from tasktool.io.media import media_items

        return media_items(kind, spec)
    return text_items(spec)
