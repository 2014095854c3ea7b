"""A built-in sample for `tasktool smoke` (inference only): one synthetic scene."""

from __future__ import annotations

from pathlib import Path

from tasktool.tiny.samples import vision_sample


def write(folder: Path, spec=None) -> dict:
    return vision_sample(folder)
