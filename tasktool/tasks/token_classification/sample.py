"""A built-in sample for `tasktool smoke`: names are PER, cities are LOC."""

from __future__ import annotations

import random
from pathlib import Path

from tasktool.tiny.samples import NAMES, PLACES, filler, write_jsonl

SMOKE_TINY = {"labels": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]}


def rows(n: int, seed: int = 0) -> list[dict]:
    """Each tag follows from the word itself."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        tokens = filler(rng, rng.randint(3, 8))
        tags = ["O"] * len(tokens)
        for entity, label in ((rng.choice(NAMES), "PER"), (rng.choice(PLACES), "LOC")):
            at = rng.randrange(len(tokens) + 1)
            tokens.insert(at, entity)
            tags.insert(at, "B-" + label)
        out.append({"tokens": tokens, "ner_tags": tags})
    return out


def write(folder: Path, spec=None) -> dict:
    data = rows(24)
    return {
        "train": write_jsonl(folder / "train.jsonl", data[:16]),
        "eval": write_jsonl(folder / "eval.jsonl", data[16:]),
        "infer": [" ".join(r["tokens"]) for r in data[16:19]],
    }
