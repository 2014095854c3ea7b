"""Whether the Hugging Face Hub can be used: asked of the environment, never of the network here."""

from __future__ import annotations

import os


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
