"""Tiny random models of each architecture family, built in seconds with no network.

Tests and the smoke mode use them: a small config, `save_pretrained` to a folder, and a tokenizer
(or processor) made in-process. Nothing is downloaded and no weights are committed. A task builds
its own with `registry.resolve(task).build_tiny(out)`, which names the family and the head's class.
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
    "llama": "tasktool.tiny.text",
    "whisper": "tasktool.tiny.audio",
    "wav2vec2": "tasktool.tiny.audio",
    "wav2vec2-ctc": "tasktool.tiny.audio",
    "vit": "tasktool.tiny.vision",
    "convnext": "tasktool.tiny.vision",
    "detr": "tasktool.tiny.vision",
    "rt_detr": "tasktool.tiny.vision",
    "mask2former": "tasktool.tiny.vision",
    "glpn": "tasktool.tiny.vision",
}
FAMILIES = tuple(_BUILDERS)


def build(family: str, out_dir: str | Path, model_class: str, **kwargs) -> Path:
    """Build a tiny random `family` model with the head of transformers' `model_class` into `out_dir`."""
    if family not in _BUILDERS:
        raise ValueError(f"unknown tiny model family '{family}' (known: {', '.join(FAMILIES)})")
    module = importlib.import_module(_BUILDERS[family])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    module.build(family, out, model_class, **kwargs)
    return out
