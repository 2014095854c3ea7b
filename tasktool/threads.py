"""CPU threads and the no-gradient context, for torch when the run uses it and for ONNX Runtime alone.

An exported text classifier or NER model runs on ONNX Runtime with a tokenizer and numpy, without
importing torch (about a second of start-up, most of a short run's wall time: benchmarks/onnx_speed.py).
The engine still splits the cores between concurrent batches and enters inference mode; these
functions do that through torch when torch is loaded in this process, and without it otherwise.
"""

from __future__ import annotations

import contextlib
import os
import sys

_threads: int | None = None  # the count set without torch (None: not set yet)


def _torch():
    return sys.modules.get("torch")


def default_count() -> int:
    """What torch would use: OMP_NUM_THREADS, else the physical cores this process may run on."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        import psutil  # accelerate's dependency: always installed with tasktool

        physical = psutil.cpu_count(logical=False)
    except ImportError:  # pragma: no cover - psutil comes with accelerate
        physical = None
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(physical or available, available))


def get() -> int:
    """Intra-op threads a batch may use now."""
    torch = _torch()
    if torch is not None:
        return torch.get_num_threads()
    return _threads or default_count()


def set_count(count: int) -> None:
    global _threads
    _threads = max(1, int(count))
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(_threads)


def no_grad():
    """torch.inference_mode() where torch runs the model; nothing to switch off without it."""
    torch = _torch()
    return torch.inference_mode() if torch is not None else contextlib.nullcontext()
