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


def to_jsonable(value):
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        return to_jsonable(value.item())
    if hasattr(value, "tolist"):
        return to_jsonable(value.tolist())
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(record: dict) -> str:
    return json.dumps(to_jsonable(record), ensure_ascii=False)


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
