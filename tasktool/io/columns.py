"""The one column picker: which column of a row plays a role (text, label, path, ...), and its value.

infer, finetune and evaluate all pick columns here, so a missing column, a typo and a missing value
behave the same everywhere: an unknown column is a one-line error with what the data has and the
nearest name; a value missing from one row is None, and the caller says what that row lacks.
"""

from __future__ import annotations

from collections.abc import Iterable

from tasktool.errors import TaskToolError, nearest


def pick(
    row: dict,
    wanted: str | None,
    defaults: Iterable[str],
    role: str,
    flag: str = "--column",
    required: bool = True,
    single_ok: bool = False,
) -> str | None:
    """The column to read: the one asked for, else the first default present (the only column when
    `single_ok`); None for an optional role with no default present."""
    columns = list(row.keys())
    if wanted:
        if wanted in row or ("." in wanted and wanted.split(".", 1)[0] in row):  # nested: pair.en
            return wanted
        guess = nearest(wanted, columns)
        hint = f"did you mean '{guess[0]}'? " if guess else ""
        raise TaskToolError(
            f"{role} column '{wanted}' not found; columns found: {', '.join(map(str, columns)) or 'none'}",
            f"{hint}choose one with {flag}",
        )
    for name in defaults:
        if name in row:
            return name
    if single_ok and len(columns) == 1:
        return columns[0]
    if not required:
        return None
    raise TaskToolError(
        f"no {role} column found; columns found: {', '.join(map(str, columns)) or 'none'}",
        f"name it with {flag}",
    )


def field(row: dict, column: str):
    """A row's value in `column` (a dotted name reaches into nested dicts); None when it has none."""
    if column in row:
        return row[column]
    value = row
    for part in column.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def as_text(value) -> str:
    """A cell read as text: strings as they are, anything else as the JSON it was written as (5, 2.5,
    true, {"a": 1}), never as a Python repr ("True", "{'a': 1}"); a missing value is ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    import json

    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)
