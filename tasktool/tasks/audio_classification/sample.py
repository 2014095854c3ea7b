"""A built-in sample for `tasktool smoke`: low and high tones, one sub-folder per label."""

from __future__ import annotations

from pathlib import Path

from tasktool.tiny.samples import tone

SMOKE_TINY = {"labels": ["high", "low"]}


def write_classes(folder: Path, per_class: int = 4, rate: int = 16000) -> Path:
    import soundfile as sf

    for label, base in (("low", 220.0), ("high", 1760.0)):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            sf.write(folder / label / f"{label}_{i}.wav", tone(base * (1 + 0.03 * i), seed=i), rate)
    return folder


def write(folder: Path, spec=None) -> dict:
    train = write_classes(folder / "train", per_class=4)
    dev = write_classes(folder / "eval", per_class=2)
    return {"train": train, "eval": dev, "infer": [str(dev)]}
