"""Helpers for the small built-in samples each task folder writes (`sample.py`) for `tasktool smoke`
and the tests: seeded English-like sentences, tones, simple pictures, and the files that hold them.

Samples use the column names the readers expect by default, so they also document the input formats.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from tasktool.tiny.text import WORDS

POSITIVE = ["great", "wonderful", "amazing", "brilliant", "fantastic", "best", "love", "happy"]
NEGATIVE = ["terrible", "awful", "worst", "boring", "dull", "poor", "hate", "sad"]
NAMES = ["john", "mary", "smith"]
PLACES = ["paris", "london", "berlin"]


def filler(rng: random.Random, k: int) -> list[str]:
    """k random words that carry no label of the samples (no sentiment, name or place)."""
    words = [w for w in WORDS if w not in POSITIVE + NEGATIVE + NAMES + PLACES]
    return rng.choices(words, k=k)


def text_lines(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(filler(rng, rng.randint(6, 14))) + " ." for _ in range(n)]


def write_text(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, rows) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def tone(freq: float, seconds: float = 0.5, rate: int = 16000, seed: int = 0):
    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(0, 0.01, t.shape)
    return (0.5 * np.sin(2 * np.pi * freq * t) + noise).astype("float32")


def write_scene(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    """A synthetic picture for the vision tasks: shapes on a gradient."""
    import numpy as np
    from PIL import Image, ImageDraw

    w, h = size
    grad = np.linspace(0, 255, w, dtype="uint8")[None, :, None].repeat(h, 0).repeat(3, 2)
    image = Image.fromarray(grad)
    draw = ImageDraw.Draw(image)
    draw.rectangle([5, 5, w // 2, h // 2], fill=(200, 40, 40))
    draw.ellipse([w // 2, h // 3, w - 4, h - 4], fill=(40, 200, 40))
    image.save(path)
    return path


def vision_sample(folder: Path, threshold: bool = False) -> dict:
    """The smoke sample of an inference-only vision task: one scene to infer on."""
    picture = write_scene(folder / "scene.png")
    return {"infer": [str(picture)], "infer_options": {"threshold": 0.0} if threshold else {}}
