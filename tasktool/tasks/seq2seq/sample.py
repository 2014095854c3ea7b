"""A built-in sample for `tasktool smoke`: summaries are the first three words, "translations" reverse
the words (both learnable mappings)."""

from __future__ import annotations

import random
from pathlib import Path

from tasktool.tiny.samples import filler, write_jsonl


def rows(n: int, seed: int = 0, src: str = "en", tgt: str = "ro") -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    summaries, translations = [], []
    for _ in range(n):
        words = filler(rng, rng.randint(4, 10))
        summaries.append({"document": " ".join(words), "summary": " ".join(words[:3])})
        translations.append({"translation": {src: " ".join(words), tgt: " ".join(reversed(words))}})
    return summaries, translations


def write(folder: Path, spec=None) -> dict:
    summaries, translations = rows(24)
    data = translations if spec is not None and spec.name == "translation" else summaries
    return {
        "train": write_jsonl(folder / "train.jsonl", data[:16]),
        "eval": write_jsonl(folder / "eval.jsonl", data[16:]),
        "infer": [r["document"] for r in summaries[16:19]],
        "infer_options": {"max_new_tokens": 8},
    }
