"""A built-in sample for `tasktool smoke` (inference only): one synthetic scene; the tiny model's labels."""

from __future__ import annotations

from pathlib import Path

from tasktool.tiny.samples import vision_sample

TINY = {"labels": ["cat", "remote", "couch"]}


def write(folder: Path, spec=None) -> dict:
    return vision_sample(folder, threshold=True)
