"""Rows from wherever data comes from: files (txt/jsonl/json/csv/tsv/parquet, CoNLL), stdin, datasets.

infer streams rows lazily (`read_rows`, `read_stream`, `stream_dataset`); finetune and evaluate
load a whole split (`load_rows`), so every validation error can name its file and row. Missing
files, unknown formats and unreadable bytes are one-line errors. A UTF-8 byte-order mark is dropped.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tasktool.errors import FAILURE, TaskToolError

TABLE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt")
CONLL_SUFFIXES = (".conll", ".iob", ".iob2", ".bio", ".conllu")


@dataclass
class Source:
    """Where one split of labelled data comes from: a file/folder, or a dataset name + split."""

    path: str
    split: str | None = None
    config: str | None = None  # a Hub dataset's configuration (glue: mrpc, sst2, ...)
    delimiter: str | None = None  # CSV field separator (default: by suffix, or sniffed from the header)

    @property
    def name(self) -> str:
        return f"{self.path}[{self.split}]" if self.split else self.path


def _bad_file(path: Path) -> None:
    if str(path) == "-":
        return
    if not path.exists():
        raise TaskToolError(f"input file '{path}' not found", "check the path")
    if path.is_dir():
        raise TaskToolError(f"input file '{path}' is a folder", "give a file, or the folder as an argument")


def read_rows(path: str | Path, fmt: str | None = None, delimiter: str | None = None) -> Iterator[dict | str]:
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
            with open(path, encoding="utf-8-sig") as fh:
                for line in fh:
                    line = line.rstrip("\r\n")
                    if line.strip():
                        yield line
        elif suffix == ".jsonl":
            with open(path, encoding="utf-8-sig") as fh:
                for n, line in enumerate(fh, 1):
                    if line.strip():
                        yield _json_line(line, path, n)
        elif suffix == ".json":
            yield from _json_rows(path)
        elif suffix in (".csv", ".tsv"):
            yield from _table_rows(path, delimiter or _delimiter_for(path, suffix))
        elif suffix == ".parquet":
            yield from _parquet_rows(path)
    except UnicodeDecodeError as exc:
        raise TaskToolError(f"cannot read '{path}': {exc}", "save the file as UTF-8 text") from exc
    except csv.Error as exc:
        raise TaskToolError(
            f"cannot parse '{path}' as {suffix[1:]}: {exc}", "check the delimiter and quoting"
        ) from exc


SNIFFED = ("|", "\t", ";")  # what a .csv header with no comma may be separated by (LJ Speech: |)


def _delimiter_for(path: Path, suffix: str) -> str:
    """The suffix's separator, unless a .csv header holds no comma and exactly one of | TAB ; instead."""
    if suffix == ".tsv":
        return "\t"
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        header = fh.readline()
    if "," in header:
        return ","
    found = [d for d in SNIFFED if d in header]
    return found[0] if len(found) == 1 else ","


def parse_delimiter(value: str | None) -> str | None:
    """--delimiter: one character; `\\t`, `tab`, `pipe`, `comma` and `semicolon` spelled out work too."""
    if value is None:
        return None
    named = {"\\t": "\t", "tab": "\t", "pipe": "|", "comma": ",", "semicolon": ";", "space": " "}
    value = named.get(value.lower(), value)
    if len(value) != 1:
        raise TaskToolError(
            f"--delimiter must be one character, got {value!r}", "e.g. --delimiter '|' or --delimiter tab"
        )
    return value


def _table_rows(path: Path, delimiter: str) -> Iterator[dict]:
    """CSV/TSV rows with RFC 4180 quoting, strictly: an unclosed quote, text after a closing quote,
    or a row with more or fewer cells than the header is an error naming the line, never rows
    merged or cut without a word. In a TSV, a cell holding both a tab and a line break is a stray
    quote that swallowed the lines after it (a writer that quotes such a cell is very rare)."""
    tsv = delimiter == "\t"
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter, strict=True)
        header = next(reader, None)
        if not header:
            return
        last = reader.line_num
        for row in _rows_naming_the_line(reader, path):
            first, last = last + 1, reader.line_num
            if not row:
                continue  # a blank line
            if tsv and any("\t" in cell and ("\n" in cell or "\r" in cell) for cell in row):
                raise TaskToolError(
                    f"{path}, lines {first}-{last}: one cell runs over {last - first + 1} lines "
                    "(a quote opens it and the tabs and line breaks after it became part of it)",
                    "remove the stray quote, or quote the whole cell and double the quotes inside it",
                )
            if len(row) != len(header):
                lines = f"line {last}" if first == last else f"lines {first}-{last}"
                raise TaskToolError(
                    f"{path}, {lines}: {len(row)} cells, but the header has {len(header)}",
                    "check the delimiter and quoting of that row",
                )
            yield dict(zip(header, row, strict=True))


def _rows_naming_the_line(reader, path: Path) -> Iterator[list[str]]:
    """The csv module's rows; its parse errors say which line they met."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise TaskToolError(
                f"{path}, line {reader.line_num}: cannot parse it ({exc})",
                "check the delimiter and quoting of that row",
            ) from exc
        yield row


def _parquet_rows(path: Path) -> Iterator[dict]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types
        raise TaskToolError(f"cannot read parquet file '{path}': {exc}", "check the file") from exc
    for batch in table.iter_batches(batch_size=1024):
        yield from batch.to_pylist()


def _json_line(line: str, path, n: int):
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise TaskToolError(
            f"{path}, line {n}: not valid JSON ({exc.msg})", "one JSON object per line"
        ) from exc


def _json_rows(path: Path) -> Iterator[dict]:
    try:
        with open(path, encoding="utf-8-sig") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        # many '.json' files are really JSON Lines
        with open(path, encoding="utf-8-sig") as fh:
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


def _lenient(stream):
    """Stdin decoded line by line: bytes that are not UTF-8 become lone surrogates (surrogateescape)
    instead of ending the run, so that one bad line is one bad input (an error record with
    --on-error skip)."""
    import io

    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        return stream
    return io.TextIOWrapper(buffer, encoding="utf-8", errors="surrogateescape", newline=None)


def read_stream(stream) -> Iterator[dict | str]:
    """Stdin: JSON Lines when every line is an object, otherwise one text a line."""
    for n, line in enumerate(_lenient(stream), 1):
        line = line.rstrip("\r\n")
        if n == 1:
            line = line.lstrip("\ufeff")
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


# ---------------------------------------------------------------------- CoNLL token files


def looks_like_conll(path: Path) -> bool:
    """Lines of `token ... tag` separated by blank lines (CoNLL-2003, GermEval)."""
    if path.suffix.lower() in CONLL_SUFFIXES:
        return True
    if path.suffix.lower() not in (".txt", ".tsv", ""):
        return False
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        lines = [ln.strip() for _, ln in zip(range(50), fh, strict=False) if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("-DOCSTART-")]
    if not lines:
        return False
    tagged = sum(len(ln.split()) >= 2 and _is_tag(ln.split()[-1]) for ln in lines)
    return tagged >= 0.9 * len(lines)


def _is_tag(word: str) -> bool:
    return word == "O" or (len(word) > 2 and word[:2] in ("B-", "I-", "E-", "S-", "L-", "U-"))


def read_conll(path: Path) -> list[dict]:
    """One row per sentence: {"tokens": [...], "ner_tags": [...]}; the tag is the last column."""
    rows: list[dict] = []
    tokens: list[str] = []
    tags: list[str] = []
    with open(path, encoding="utf-8-sig") as fh:
        for n, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.startswith("-DOCSTART-"):
                if tokens:
                    rows.append({"tokens": tokens, "ner_tags": tags})
                tokens, tags = [], []
                continue
            parts = line.split("\t") if "\t" in line else line.split()
            parts = [p for p in parts if p != ""]
            if len(parts) < 2:
                raise TaskToolError(
                    f"{path}, line {n}: expected 'token tag', got {line!r}",
                    "CoNLL files hold a token and its tag per line, a blank line between sentences",
                )
            tokens.append(parts[0])
            tags.append(parts[-1])
    if tokens:
        rows.append({"tokens": tokens, "ner_tags": tags})
    return rows


# ---------------------------------------------------------------------- whole splits


def load_rows(source: Source, conll: bool = False, delimiter: str | None = None) -> list[dict]:
    """All rows of one split, as dicts (plain text lines become {"text": line})."""
    path = Path(source.path).expanduser()
    delimiter = delimiter or source.delimiter
    if path.is_dir():
        rows = dataset_rows(str(path), source.split or "train", source.config)
    elif path.exists():
        if conll and looks_like_conll(path) and not delimiter:
            rows = read_conll(path)
        else:
            rows = list(read_rows(path, delimiter=delimiter))
    elif source.split or not path_like(source.path):
        rows = dataset_rows(source.path, source.split or "train", source.config)
    else:
        raise TaskToolError(
            f"data file '{source.path}' not found", "check the path given to --data/--eval-data"
        )
    rows = [row if isinstance(row, dict) else {"text": row} for row in rows]
    if not rows:
        raise TaskToolError(f"'{source.name}' holds no rows", "give a file with at least one example")
    return rows


def path_like(ref: str) -> bool:
    """Whether a --data value names a file (rather than a Hub dataset)."""
    return ref.startswith((".", "/", "~")) or Path(ref).suffix.lower() in (
        *TABLE_SUFFIXES,
        *CONLL_SUFFIXES,
    )


# ---------------------------------------------------------------------- datasets


def is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists())


def open_dataset(name: str, split: str, streaming: bool = False, config: str | None = None):
    """A save_to_disk folder, a data-file folder or a Hub dataset (streamed when asked); audio and
    image columns come as files ({"path", "bytes"}), never decoded here (that needs torchcodec)."""
    from tasktool.hub import ensure_reachable, offline, unreachable_hint, unreachable_reason

    path = Path(name).expanduser()
    if not is_saved_dataset(path) and not path.exists():
        ensure_reachable()  # one fast probe before datasets' retrying client
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - a dependency
        raise TaskToolError("the 'datasets' package is missing", "pip install datasets") from exc
    datasets.disable_progress_bars()
    try:
        if is_saved_dataset(path):
            ds = datasets.load_from_disk(str(path))
        elif not path.exists() and offline():
            raise TaskToolError(
                f"cannot fetch dataset '{name}': {unreachable_reason()}",
                f"save it locally and pass its folder, pass a data file, or {unreachable_hint()}",
                exit_code=FAILURE,
            )
        else:
            ds = datasets.load_dataset(
                str(path) if path.exists() else name, config, split=split, streaming=streaming
            )
        if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)):
            if split not in ds:
                raise TaskToolError(f"dataset '{name}' has no split '{split}'", f"splits: {', '.join(ds)}")
            ds = ds[split]
        for col, feat in (ds.features or {}).items():
            if isinstance(feat, (datasets.Audio, datasets.Image)) and feat.decode:
                ds = ds.cast_column(col, type(feat)(decode=False))
    except TaskToolError:
        raise
    except ValueError as exc:
        raise TaskToolError(
            f"cannot load split '{split}' of dataset '{name}': {str(exc).splitlines()[0]}", "check the split"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - datasets raises many types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TaskToolError(
            f"cannot load dataset '{name}': {first}", "check the name, or pass a local file"
        ) from exc
    return ds


def stream_dataset(name: str, split: str, config: str | None = None) -> Iterator[dict]:
    """Rows of a dataset for infer, lazily (Hub datasets are streamed)."""
    path = Path(name).expanduser()
    yield from open_dataset(name, split, streaming=not path.exists(), config=config)


def dataset_rows(name: str, split: str, config: str | None = None) -> list[dict]:
    """All rows of a dataset split; ClassLabel ids (and lists of them) become their names."""
    import datasets

    ds = open_dataset(name, split, config=config)
    names = {}
    for col, feat in ds.features.items():
        inner = getattr(feat, "feature", None)
        if isinstance(feat, datasets.ClassLabel):
            names[col] = (False, feat.names)
        elif isinstance(inner, datasets.ClassLabel):
            names[col] = (True, inner.names)
    rows = ds.to_list()
    for row in rows:
        for col, (is_seq, labels) in names.items():
            value = row.get(col)
            if is_seq and isinstance(value, list):
                row[col] = [labels[v] if isinstance(v, int) and 0 <= v < len(labels) else v for v in value]
            elif isinstance(value, int) and 0 <= value < len(labels):
                row[col] = labels[value]
    return rows


# ---------------------------------------------------------------------- counts (progress totals)


def count_rows(path: str | Path, fmt: str | None = None, delimiter: str | None = None) -> int | None:
    """Rows `read_rows` will yield, from one quick pass (line counts; parquet metadata); None for stdin
    and for .json, which would have to be parsed whole."""
    path = Path(path)
    if str(path) == "-" or not path.is_file():
        return None
    suffix = (fmt and "." + fmt.lstrip(".")) or path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if suffix in (".csv", ".tsv"):
        return sum(1 for _ in _table_rows(path, delimiter or _delimiter_for(path, suffix)))
    if suffix == ".json":
        return None
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def dataset_size(name: str, split: str, config: str | None = None) -> int | None:
    """Rows of a local dataset split (a save_to_disk folder); None for a Hub dataset (streamed)."""
    path = Path(name).expanduser()
    if not is_saved_dataset(path):
        return None
    ds = open_dataset(name, split, config=config)
    return len(ds)
