"""A built-in sample for `tasktool smoke`: tone clips with short 'transcriptions' (a shape check, not
speech) and a metadata.csv."""

from __future__ import annotations

from pathlib import Path

from tasktool.tiny.samples import tone, write_csv


def write_clips(folder: Path, n: int = 4, rate: int = 16000) -> Path:
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        name = f"clip_{i}.wav"
        sf.write(folder / name, tone(300.0 + 150 * i, seconds=1.0, seed=i), rate)
        rows.append({"file_name": name, "transcription": ["one", "two", "three", "four"][i % 4]})
    write_csv(folder / "metadata.csv", rows)
    return folder


def write(folder: Path, spec=None) -> dict:
    train = write_clips(folder / "train", n=4)
    return {"train": train, "eval": train, "infer": [str(next(train.glob("*.wav")))]}
