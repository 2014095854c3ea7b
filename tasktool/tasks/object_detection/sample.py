"""A built-in sample for `tasktool smoke`: a red square on noise per image, its box in a CSV with one
row per box (filename,class,xmin,ymin,xmax,ymax), the format `tasktool finetune` reads."""

from __future__ import annotations

from pathlib import Path

from tasktool.tiny.samples import vision_sample, write_csv

TINY = {"labels": ["cat", "remote", "couch"]}
SMOKE_TINY = {"labels": ["square"]}


def write_squares(folder: Path, n: int, size: tuple[int, int] = (64, 64), seed: int = 0) -> Path:
    """`n` noise images each with one red square (a quarter to a half of the image wide) and boxes.csv."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    rows = []
    for i in range(n):
        pixels = np.clip(rng.normal(90, 30, (height, width, 3)), 0, 255).astype(np.uint8)
        side = int(rng.integers(min(size) // 4, min(size) // 2 + 1))
        x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        pixels[y : y + side, x : x + side] = (220, 30, 30)
        Image.fromarray(pixels).save(folder / f"square_{i}.png")
        rows.append(
            {
                "filename": f"square_{i}.png",
                "class": "square",
                "xmin": x,
                "ymin": y,
                "xmax": x + side,
                "ymax": y + side,
            }
        )
    return write_csv(folder / "boxes.csv", rows)


def write(folder: Path, spec=None) -> dict:
    train = write_squares(folder / "train", 4, size=(32, 32), seed=0)
    dev = write_squares(folder / "eval", 2, size=(32, 32), seed=1)
    return {"train": train, "eval": dev, **vision_sample(folder, threshold=True)}
