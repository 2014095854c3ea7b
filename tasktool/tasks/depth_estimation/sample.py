"""A built-in sample for `tasktool smoke`: grey images whose brightness follows a left-right depth ramp
(near on one side, far on the other, either way round), with the depth in metres as .npy files."""

from __future__ import annotations

from pathlib import Path

from tasktool.tiny.samples import vision_sample, write_jsonl

NEAR, FAR = 1.0, 5.0  # metres


def ramp(width: int, height: int, reverse: bool):
    """Depth in metres rising from NEAR at the left to FAR at the right (or the other way)."""
    import numpy as np

    row = np.linspace(NEAR, FAR, width, dtype=np.float32)
    return np.repeat((row[::-1] if reverse else row)[None, :], height, axis=0).copy()


def write_ramps(
    folder: Path, n: int, size: tuple[int, int] = (64, 64), seed: int = 0, png: bool = False
) -> Path:
    """`n` image/depth pairs and a manifest.jsonl (image, depth). Near is bright, far is dark, with
    noise; png: depth as 16-bit PNGs in millimetres (read them with --depth-scale 0.001)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    rows = []
    for i in range(n):
        depth = ramp(width, height, reverse=bool(i % 2))
        grey = 230 - 180 * (depth - NEAR) / (FAR - NEAR) + rng.normal(0, 12, depth.shape)
        pixels = np.clip(grey, 0, 255).astype(np.uint8)
        Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(folder / f"scene_{i}.png")
        if png:
            Image.fromarray((depth * 1000).round().astype(np.uint16)).save(folder / f"depth_{i}.png")
            rows.append({"image": f"scene_{i}.png", "depth": f"depth_{i}.png"})
        else:
            np.save(folder / f"depth_{i}.npy", depth)
            rows.append({"image": f"scene_{i}.png", "depth": f"depth_{i}.npy"})
    return write_jsonl(folder / "manifest.jsonl", rows)


def write(folder: Path, spec=None) -> dict:
    train = write_ramps(folder / "train", 4, size=(32, 32), seed=0)
    dev = write_ramps(folder / "eval", 2, size=(32, 32), seed=1)
    return {"train": train, "eval": dev, **vision_sample(folder)}
