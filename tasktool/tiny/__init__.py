"""Tiny random models of each architecture family, built in seconds with no network.

Tests and the smoke mode use them: a small config, `save_pretrained` to a folder, and a
tokenizer (or processor) made in-process. Nothing is downloaded and no weights are committed.
"""

from __future__ import annotations

import importlib
from pathlib import Path

# family -> module that builds it
_BUILDERS = {
    "bert": "tasktool.tiny.text",
    "gpt2": "tasktool.tiny.text",
    "bart": "tasktool.tiny.text",
    "t5": "tasktool.tiny.text",
    "marian": "tasktool.tiny.text",
    "whisper": "tasktool.tiny.audio",
    "wav2vec2": "tasktool.tiny.audio",
    "wav2vec2-ctc": "tasktool.tiny.audio",
    "vit": "tasktool.tiny.vision",
    "convnext": "tasktool.tiny.vision",
    "detr": "tasktool.tiny.vision",
    "mask2former": "tasktool.tiny.vision",
    "glpn": "tasktool.tiny.vision",
}


def build(task: str, out_dir: str | Path, family: str | None = None, **kwargs) -> Path:
    """Build a tiny random model for `task` (canonical name or alias) into `out_dir`."""
    from tasktool.tasks.registry import resolve

    spec = resolve(task)
    family = family or spec.family
    module = importlib.import_module(_BUILDERS[family])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    module.build(spec.name, family, out, **kwargs)
    return out
