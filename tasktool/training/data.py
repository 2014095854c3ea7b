"""Training/evaluation data: files, CoNLL token files, save_to_disk folders or Hub datasets -> row dicts.

Rows stay plain Python (lists of dicts): the samples people fine-tune on from the shell are small
enough, and every validation error can then name the file and row it comes from.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tasktool.errors import TaskToolError, nearest

CONLL_SUFFIXES = (".conll", ".iob", ".iob2", ".bio", ".conllu")


@dataclass
class Source:
    """Where one split comes from: a file/folder, or a dataset name + split."""

    path: str
    split: str | None = None

    @property
    def name(self) -> str:
        return f"{self.path}[{self.split}]" if self.split else self.path


def looks_like_conll(path: Path) -> bool:
    """Lines of `token ... tag` separated by blank lines (CoNLL-2003, GermEval)."""
    if path.suffix.lower() in CONLL_SUFFIXES:
        return True
    if path.suffix.lower() not in (".txt", ".tsv", ""):
        return False
    with open(path, encoding="utf-8", errors="replace") as fh:
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
    with open(path, encoding="utf-8") as fh:
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


def load_rows(source: Source, conll: bool = False) -> list[dict]:
    """All rows of one split, as dicts (plain text lines become {"text": line})."""
    from tasktool.io.readers import read_rows

    path = Path(source.path).expanduser()
    if path.is_dir():
        rows = dataset_rows(str(path), source.split or "train")
    elif path.exists():
        if conll and looks_like_conll(path):
            rows = read_conll(path)
        else:
            rows = list(read_rows(path))
    elif source.split or not _path_like(source.path):
        rows = dataset_rows(source.path, source.split or "train")
    else:
        raise TaskToolError(
            f"data file '{source.path}' not found", "check the path given to --data/--eval-data"
        )
    rows = [row if isinstance(row, dict) else {"text": row} for row in rows]
    if not rows:
        raise TaskToolError(f"'{source.name}' holds no rows", "give a file with at least one example")
    return rows


def dataset_rows(name: str, split: str) -> list[dict]:
    """A save_to_disk folder, a data-file folder or a Hub dataset; ClassLabel ids become their names."""
    from tasktool.runtime import offline

    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - a dependency
        raise TaskToolError("the 'datasets' package is missing", "pip install datasets") from exc
    datasets.disable_progress_bars()
    path = Path(name).expanduser()
    try:
        if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
            ds = datasets.load_from_disk(str(path))
        elif not path.exists() and offline():
            raise TaskToolError(
                f"cannot fetch dataset '{name}': the Hugging Face Hub is unreachable (offline)",
                "save it locally and pass its folder or a file with --data",
            )
        else:
            ds = datasets.load_dataset(str(path) if path.exists() else name, split=split)
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise TaskToolError(f"dataset '{name}' has no split '{split}'", f"splits: {', '.join(ds)}")
            ds = ds[split]
    except TaskToolError:
        raise
    except Exception as exc:  # noqa: BLE001 - datasets raises many types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TaskToolError(
            f"cannot load dataset '{name}': {first}", "check the name and --train-split"
        ) from exc
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


def _path_like(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or Path(ref).suffix.lower() in (
        ".csv",
        ".tsv",
        ".json",
        ".jsonl",
        ".parquet",
        ".txt",
        *CONLL_SUFFIXES,
    )


def pick(
    row: dict, wanted: str | None, defaults: Iterable[str], role: str, flag: str, required: bool = True
) -> str | None:
    """The column for `role`: the one given with `flag`, else the first default present."""
    columns = list(row)
    if wanted:
        if wanted in row or ("." in wanted and wanted.split(".", 1)[0] in row):
            return wanted
        guess = nearest(wanted, columns)
        hint = f"did you mean '{guess[0]}'? " if guess else ""
        raise TaskToolError(
            f"{role} column '{wanted}' not found; columns found: {', '.join(columns) or 'none'}",
            f"{hint}choose one with {flag}",
        )
    for name in defaults:
        if name in row:
            return name
    if not required:
        return None
    raise TaskToolError(
        f"no {role} column found; columns found: {', '.join(columns) or 'none'}", f"name it with {flag}"
    )


def field(row: dict, column: str):
    if column in row:
        return row[column]
    value = row
    for part in column.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def holdout(rows: list, fraction: float, seed: int) -> tuple[list, list]:
    """A fixed-seed split: the same data and seed always hold out the same rows."""
    if not 0 < fraction < 1:
        raise TaskToolError(
            f"eval_fraction must be between 0 and 1, got {fraction}", "e.g. eval_fraction=0.2"
        )
    if len(rows) < 2:
        raise TaskToolError(
            "too little data to hold out an evaluation split (fewer than 2 rows)",
            "give more rows, or pass --eval-data",
        )
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = min(max(1, round(len(rows) * fraction)), len(rows) - 1)
    eval_ids = set(order[:n_eval])
    train = [row for i, row in enumerate(rows) if i not in eval_ids]
    evals = [row for i, row in enumerate(rows) if i in eval_ids]
    return train, evals


def row_label(n: int, source: Source) -> str:
    return f"{source.name}, row {n + 1}"
