"""An int8 classifier checked where it is unsure (`--recheck-margin`).

int8 arithmetic moves a classifier's scores a little, which changes a label only where the two best
labels were close. The rows whose two best int8 scores are closer than the margin (for a token
classifier: at any of the row's tokens) run again on the float32 graph the export keeps beside the
int8 one, and take its scores: the labels are float32's wherever int8 could have flipped them, at the
cost of the rows that are close (benchmarks/onnx_speed.py; README "int8 with a float32 recheck").
"""

from __future__ import annotations

import threading

import numpy as np

from tasktool.tasks.arrays import to_numpy


def close_rows(scores: np.ndarray, margin: float, counts: np.ndarray | None = None) -> np.ndarray:
    """The rows whose best and second-best scores are less than `margin` apart: `scores` is (rows,
    labels), or (rows, tokens, labels) where a row is close when any of its tokens is (`counts`:
    (rows, tokens) booleans, the tokens that make the row's record; None: all of them)."""
    if scores.shape[-1] < 2:
        return np.zeros(0, dtype=np.int64)
    top2 = -np.partition(-scores, 1, axis=-1)[..., :2]
    gap = top2[..., 0] - top2[..., 1]
    if gap.ndim == 2:
        gap = np.where(counts, gap, np.inf).min(axis=1) if counts is not None else gap.min(axis=1)
    return np.flatnonzero(gap < margin)


class Rechecker:
    """The export's float32 graph, run on the close rows of each int8 batch; counts what it re-ran."""

    def __init__(self, model, margin: float):
        from tasktool import backends

        self.model = backends.float_model(model)
        self.margin = margin
        self.rows = self.rechecked = 0
        self._lock = threading.Lock()  # batches may run on two threads at once

    def scores(self, scores: np.ndarray, inputs: dict, to_scores, counts=None) -> np.ndarray:
        """`scores` with the close rows' replaced by the float32 graph's (`to_scores`: logits -> scores;
        `counts`: for token scores, the tokens that make each row's record)."""
        close = close_rows(scores, self.margin, counts)
        with self._lock:
            self.rows += len(scores)
            self.rechecked += len(close)
        if close.size == 0:
            return scores
        rows = {name: value[close] for name, value in inputs.items() if hasattr(value, "shape")}
        again = to_numpy(self.model(**rows).logits)
        scores = scores.copy()
        scores[close] = to_scores(again)
        return scores

    def note(self) -> str:
        return (
            f"--recheck-margin {self.margin:g}: {self.rechecked} of {self.rows} rows ran again on the "
            "float32 graph"
        )


class Rechecks:
    """Mixed into a classifier's predictor: takes --recheck-margin; predict() passes its scores through
    `self.rechecker.scores` when it is set."""

    rechecks = True
    rechecker: Rechecker | None = None

    def specialise(self, model):  # the text predictors' hook after the load
        super().specialise(model)
        self.start_rechecks(model)

    def start_rechecks(self, model) -> None:
        """Open the float32 graph when --recheck-margin is given (a one-line error where it cannot apply)."""
        if self.opts.recheck_margin is not None:
            self.rechecker = Rechecker(model, self.opts.recheck_margin)

    def rechecked_torch(self, probs, inputs: dict, multi: bool):
        """A torch predictor's (rows, labels) scores with the close rows' rerun on the float32 graph."""
        if self.rechecker is None:
            return probs
        import torch

        from tasktool.tasks.arrays import sigmoid, softmax

        scores = self.rechecker.scores(probs.cpu().numpy(), inputs, sigmoid if multi else softmax)
        return torch.from_numpy(scores)

    def run_note(self):
        return self.rechecker.note() if self.rechecker is not None else None
