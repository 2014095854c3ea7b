"""What flows through a run: an input Item, and the plain-JSON records that come out of it.

Readers make Items, the engine turns them into records, writers and tables show the records; all of
them meet here, at the bottom of the import graph.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Item:
    """One input: its id (given or its position), the payload the task reads, and how to show it."""

    id: Any
    payload: Any
    display: Any = None
    meta: dict = field(default_factory=dict)

    def shown(self):
        return self.payload if self.display is None else self.display


def to_jsonable(value, digits: int | None = 6):
    """Plain JSON values: arrays become lists, floats are rounded to `digits` (None: kept exact), and
    NaN/Infinity become None (JSON has no such numbers; strict parsers reject them)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, digits) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        return to_jsonable(value.item(), digits)
    if hasattr(value, "tolist"):
        return to_jsonable(value.tolist(), digits)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return value if digits is None else round(value, digits)
    if isinstance(value, Path):
        return str(value)
    return value


def record_jsonable(record: dict) -> dict:
    """A record as plain JSON: result floats rounded, but the id exactly as read (ids are keys, not
    measurements: 0.1234567 and 0.1234568 must stay two ids)."""
    out = to_jsonable(record)
    if "id" in record:
        out["id"] = to_jsonable(record["id"], digits=None)
    return out


def non_finite(value, where: str = "") -> list[str]:
    """Paths of the NaN/Infinity numbers in a result (["score", "labels[2].score"]), to report them."""
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            found += non_finite(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found += non_finite(v, f"{where}[{i}]")
    elif hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        found += non_finite(value.item(), where)
    elif hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        found += non_finite(value.tolist(), where)
    elif isinstance(value, float) and not math.isfinite(value):
        found.append(where or "value")
    return found


def valid_text(text: str) -> str:
    """`text` as encodable Unicode: a lone surrogate (undecodable input bytes, a broken JSON escape)
    becomes U+FFFD, so the output file stays valid UTF-8."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def dumps(record: dict) -> str:
    return valid_text(json.dumps(record_jsonable(record), ensure_ascii=False, allow_nan=False))


def short(value, width: int = 80) -> str:
    """A compact one-cell rendering of a result value."""
    if isinstance(value, float):
        text = f"{value:.4f}"
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        parts = []
        for entry in value[:5]:
            label = (
                entry.get("label")
                or entry.get("entity_group")
                or entry.get("entity")
                or entry.get("token_str")
            )
            word = entry.get("word")
            score = entry.get("score")
            piece = f"{word}:{label}" if word and label else str(label if label is not None else entry)
            if isinstance(score, (int, float)):
                piece += f" ({score:.2f})"
            parts.append(piece)
        text = ", ".join(parts) + (" …" if len(value) > 5 else "")
    elif isinstance(value, (dict, list)):
        text = json.dumps(to_jsonable(value), ensure_ascii=False)
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"
