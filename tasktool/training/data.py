"""Held-out evaluation splits, when no --eval-data is given: fixed-seed, so the same data and seed
always hold out the same rows (and `tasktool evaluate` on the saved split reproduces metrics.json)."""

from __future__ import annotations

import random

from tasktool.errors import TaskToolError


def _check_fraction(fraction: float) -> None:
    if not 0 < fraction < 1:
        raise TaskToolError(
            f"eval_fraction must be between 0 and 1, got {fraction}", "e.g. eval_fraction=0.2"
        )


MAX_HOLDOUT = 1000  # a held-out share larger than this takes training data and adds little certainty


def holdout(rows: list, fraction: float, seed: int, max_rows: int | None = None) -> tuple[list, list]:
    """A fixed-seed random share of the rows for evaluation (at most `max_rows`); at least one row on
    each side."""
    _check_fraction(fraction)
    if len(rows) < 2:
        raise TaskToolError(
            "too little data to hold out an evaluation split (fewer than 2 rows)",
            "give more rows, or pass --eval-data",
        )
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = min(max(1, round(len(rows) * fraction)), len(rows) - 1, max_rows or len(rows))
    eval_ids = set(order[:n_eval])
    train = [row for i, row in enumerate(rows) if i not in eval_ids]
    evals = [row for i, row in enumerate(rows) if i in eval_ids]
    return train, evals


def stratified_holdout(
    examples: list[dict], fraction: float, seed: int, max_rows: int | None = None
) -> tuple[list[dict], list[dict]]:
    """A fixed-seed held-out share of each label; every label keeps at least one training example
    (at most `max_rows` in all: the share shrinks to fit)."""
    _check_fraction(fraction)
    if max_rows and len(examples) * fraction > max_rows:
        fraction = max_rows / len(examples)
    by_label: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_label.setdefault(ex["label"], []).append(i)
    rng = random.Random(seed)
    eval_ids: set[int] = set()
    for ids in by_label.values():
        ids = ids[:]
        rng.shuffle(ids)
        eval_ids.update(ids[: min(round(len(ids) * fraction), len(ids) - 1)])
    if not eval_ids:  # too few per label: hold out one example of the largest label
        largest = max(by_label.values(), key=len)
        if len(largest) < 2:
            raise TaskToolError(
                "too little data to hold out an evaluation split (one file per label)",
                "give more files, or pass --eval-data",
            )
        eval_ids.add(largest[-1])
    train = [ex for i, ex in enumerate(examples) if i not in eval_ids]
    evals = [ex for i, ex in enumerate(examples) if i in eval_ids]
    return train, evals
