"""A built-in sample for `tasktool smoke`: red and blue squares with noise, one sub-folder per label."""

from __future__ import annotations

from pathlib import Path

TINY = {"labels": ["cat", "dog"]}
SMOKE_TINY = {"labels": ["blue", "red"]}


def write_classes(folder: Path, per_class: int = 4, size: int = 32) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 20, (size, size, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(folder / label / f"{label}_{i}.png")
    return folder


def write(folder: Path, spec=None) -> dict:
    train = write_classes(folder / "train", per_class=4)
    dev = write_classes(folder / "eval", per_class=2)
    return {"train": train, "eval": dev, "infer": [str(dev)]}
