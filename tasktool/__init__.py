"""tasktool: one command line for every Hugging Face Transformers task.

The Python API (tasktool.infer / finetune / evaluate) is what the commands run; see tasktool/api.py.
"""

import os

__version__ = "0.1.0"

# oneDNN caches one compiled kernel per matmul shape (1024 by default). Length-sorted batches give
# every batch a shape of its own, and a process that also holds a compiled model outgrew the cache,
# so kernels were rebuilt batch after batch (see benchmarks/README.md). Read when oneDNN first runs,
# so setting it here (before any model runs) is enough; a value the user set is kept.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "4096")


def __getattr__(name: str):
    """tasktool.infer / finetune / evaluate / merge, imported on first use (`tasktool --help` stays light)."""
    if name in ("infer", "finetune", "evaluate", "merge"):
        from tasktool import api

        return getattr(api, name)
    raise AttributeError(f"module 'tasktool' has no attribute {name!r}")
