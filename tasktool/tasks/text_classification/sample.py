"""A built-in sample for `tasktool smoke`: a label that follows from one word of the sentence."""

from __future__ import annotations

import random
from pathlib import Path

from tasktool.tiny.samples import NEGATIVE, POSITIVE, filler, write_csv

SMOKE_TINY = {"labels": ["negative", "positive"]}


def rows(n: int, seed: int = 0) -> list[dict]:
    """Label = whether the sentence holds a positive or a negative word: learnable from one token."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = filler(rng, rng.randint(3, 10))
        label = "positive" if i % 2 == 0 else "negative"
        words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label == "positive" else NEGATIVE))
        out.append({"text": " ".join(words), "label": label})
    return out


def write(folder: Path, spec=None) -> dict:
    data = rows(24)
    return {
        "train": write_csv(folder / "train.csv", data[:16]),
        "eval": write_csv(folder / "eval.csv", data[16:]),
        "infer": [r["text"] for r in data[16:19]],
    }
