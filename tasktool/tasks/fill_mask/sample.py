"""A built-in sample for `tasktool smoke`: lines of text, and sentences with a masked third word."""

from __future__ import annotations

from pathlib import Path

from tasktool.tiny.samples import text_lines, write_text


def write(folder: Path, spec=None) -> dict:
    lines = text_lines(40)
    masked = [
        " ".join("[MASK]" if i == 2 else w for i, w in enumerate(line.split())) for line in lines[32:35]
    ]
    return {
        "train": write_text(folder / "train.txt", lines[:32]),
        "eval": write_text(folder / "eval.txt", lines[32:]),
        "infer": masked,
    }
