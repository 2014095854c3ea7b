"""tasktool: one command line for every Hugging Face Transformers task."""

import os

__version__ = "0.1.0"

# oneDNN caches one compiled kernel per matmul shape (1024 by default). Length-sorted batches give
# every batch a shape of its own, and a process that also holds a compiled model outgrew the cache:
# kernels were rebuilt batch after batch (bf16 inference 1.25x slower, measured). Read when oneDNN
# first runs, so setting it here (before any model runs) is enough; a value the user set is kept.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "4096")
