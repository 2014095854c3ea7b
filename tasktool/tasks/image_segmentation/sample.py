"""A built-in sample for `tasktool smoke`: a bright shape (square or disc) on a noisy background, its
mask (0: background, 1: shape) as a PNG of class ids, and an id2label.json naming the classes."""

from __future__ import annotations

import json
from pathlib import Path

from tasktool.tiny.samples import vision_sample, write_jsonl

TINY = {"labels": ["cat", "couch", "wall"]}
SMOKE_TINY = {"labels": ["background", "shape"]}
NAMES = ["background", "shape"]


def write_shapes(folder: Path, n: int, size: tuple[int, int] = (64, 64), seed: int = 0) -> Path:
    """`n` images with masks and a manifest.jsonl (image, mask); id2label.json names the two classes."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    rows = []
    for i in range(n):
        pixels = np.clip(rng.normal(90, 30, (height, width, 3)), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        mask = Image.new("L", (width, height), 0)
        side = int(rng.integers(min(size) // 4, min(size) // 2))
        x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
        box = [x, y, x + side, y + side]
        for canvas, fill in ((ImageDraw.Draw(image), (235, 210, 60)), (ImageDraw.Draw(mask), 1)):
            (canvas.rectangle if i % 2 else canvas.ellipse)(box, fill=fill)
        image.save(folder / f"shape_{i}.png")
        mask.save(folder / f"shape_{i}_mask.png")
        rows.append({"image": f"shape_{i}.png", "mask": f"shape_{i}_mask.png"})
    (folder / "id2label.json").write_text(json.dumps(dict(enumerate(NAMES))) + "\n", encoding="utf-8")
    return write_jsonl(folder / "manifest.jsonl", rows)


def write(folder: Path, spec=None) -> dict:
    train = write_shapes(folder / "train", 4, size=(32, 32), seed=0)
    dev = write_shapes(folder / "eval", 2, size=(32, 32), seed=1)
    return {"train": train, "eval": dev, **vision_sample(folder, threshold=True)}
