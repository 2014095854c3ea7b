"""A built-in sample for `tasktool smoke`: lines of text, and prompts of four words."""

from __future__ import annotations

from pathlib import Path

from tasktool.tiny.samples import text_lines, write_text


def write(folder: Path, spec=None) -> dict:
    lines = text_lines(40)
    return {
        "train": write_text(folder / "train.txt", lines[:32]),
        "eval": write_text(folder / "eval.txt", lines[32:]),
        "infer": [" ".join(line.split()[:4]) for line in lines[32:35]],
        "infer_options": {"max_new_tokens": 8},
    }
