"""Model outputs as numpy arrays, and the few functions the predictors apply to them.

A torch model gives tensors, an ONNX Runtime session numpy arrays; predictors that read both through
`to_numpy` run on an exported model without importing torch (tasktool.backends, `arrays = "numpy"`).
"""

from __future__ import annotations

import numpy as np


def to_numpy(values) -> np.ndarray:
    """float32 numpy from a torch tensor (any device, any float dtype) or an array."""
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float32)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def top_k(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, indices) of the k largest per row, largest first (ties: the lower index first)."""
    ids = np.argsort(-probs, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(probs, ids, axis=-1), ids
