"""A built-in sample for `tasktool smoke`: pairs of sentences, scored by how many words they share."""

from __future__ import annotations

import random
from pathlib import Path

from tasktool.tiny.samples import filler, write_jsonl


def rows(n: int, seed: int = 0) -> list[dict]:
    """The second sentence keeps k of the first's 6 words: a score of k (0-6) that embeddings can see."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        first = filler(rng, 6)
        keep = rng.randint(0, 6)
        second = first[:keep] + filler(rng, 6 - keep)
        out.append({"sentence1": " ".join(first), "sentence2": " ".join(second), "score": float(keep)})
    return out


def write(folder: Path, spec=None) -> dict:
    data = rows(12)
    return {"eval": write_jsonl(folder / "eval.jsonl", data), "infer": [r["sentence1"] for r in data[:3]]}
