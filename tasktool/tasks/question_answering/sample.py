"""A built-in sample for `tasktool smoke`: where does a person live?"""

from __future__ import annotations

import random
from pathlib import Path

from tasktool.tiny.samples import NAMES, PLACES, filler, write_jsonl


def rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name, place = rng.choice(NAMES), rng.choice(PLACES)
        before = " ".join(filler(rng, rng.randint(2, 6)))
        context = f"{before} {name} lives in {place} . " + " ".join(filler(rng, rng.randint(2, 6)))
        out.append(
            {
                "id": f"q{i}",
                "question": f"where does {name} live ?",
                "context": context,
                "answers": {"text": [place], "answer_start": [context.index(f" in {place}") + 4]},
            }
        )
    return out


def write(folder: Path, spec=None) -> dict:
    data = rows(24)
    questions = [{"question": r["question"], "context": r["context"]} for r in data[16:19]]
    return {
        "train": write_jsonl(folder / "train.jsonl", data[:16]),
        "eval": write_jsonl(folder / "eval.jsonl", data[16:]),
        "infer_file": str(write_jsonl(folder / "questions.jsonl", questions)),
    }
