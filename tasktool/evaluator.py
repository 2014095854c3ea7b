"""Scoring a model: the engine's predictions, exactly as `tasktool infer` makes them, then the task's
metric. No trainer is involved, so every task with a metric can be evaluated on any saved model; the
fine-tuning run calls the same code on the model it just saved, so `tasktool evaluate` on that folder
and its held-out split reproduces metrics.json.

A task's evaluate.py subclasses `Evaluator` and fills in the hooks marked "task hook" (Ultralytics'
validator, transformers' compute_metrics, in one small class).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasktool.errors import ItemError, TaskToolError


class Evaluator:
    """Engine predictions for a task's examples, scored by the task's metric."""

    # safety switches of this evaluation (`tasktool evaluate --allow-pickle / --trust-remote-code`)
    allow_pickle = False
    trust_remote_code = False
    recheck_margin: float | None = None  # --recheck-margin: an int8 classifier's close rows on float32

    def __init__(self, spec, recipe: dict | None = None):
        self.spec = spec
        self.recipe = recipe or {}

    # ------------------------------------------------------------------ task hooks
    def check(self, examples: list[dict], config) -> list[dict]:
        """Task hook: examples the model can be scored on (e.g. labels it knows); raise naming a row."""
        return examples

    def payload(self, example: dict) -> Any:
        """Task hook: what the engine reads for one example (a text, a pair, a path)."""
        raise NotImplementedError

    def infer_options(self) -> dict:
        """Task hook: infer options the predictions need (NER aggregation, a language pair, ...)."""
        return {}

    def score(self, examples: list[dict], records: list[dict]) -> tuple[dict, list[dict]]:
        """Task hook: (metrics, one row per example) from the examples and their engine records."""
        raise NotImplementedError

    def artifacts(self, folder: Path) -> list[str]:
        """Task hook: extra files for a fine-tuned model's folder after its evaluation (model card lines)."""
        return []

    # What the last evaluation adds beside its scores (metrics.json, the model card): a task's `score`
    # fills it, e.g. {"per_class": {label: {precision, recall, f1, support}}, "unseen_labels": [...]}.
    details: dict

    def report(self) -> dict:
        return dict(getattr(self, "details", {}) or {})

    # ------------------------------------------------------------------ the run
    def evaluate(
        self,
        model_dir: str,
        examples: list[dict],
        batch_size: int = 32,
        device: str = "auto",
        max_length: int | None = None,
    ) -> tuple[dict, list[dict]]:
        from tasktool import runtime

        self.details = {}
        examples = self.check(
            examples, runtime.load_config(model_dir, trust_remote_code=self.trust_remote_code)
        )
        records = self.predictions(
            model_dir, [self.payload(ex) for ex in examples], batch_size, device, max_length
        )
        metrics, rows = self.score(examples, records)
        metrics["examples"] = metrics.get("examples", len(rows))
        warn_below_baseline(metrics)
        return metrics, rows

    on_error = "raise"  # media evaluators skip unreadable files (and count them)

    def predictions(
        self, model_dir: str, payloads: list, batch_size: int, device: str, max_length: int | None
    ) -> list[dict]:
        return predict(
            self.spec,
            model_dir,
            payloads,
            batch_size=batch_size,
            device=device,
            max_length=max_length,
            on_error=self.on_error,
            allow_pickle=self.allow_pickle,
            trust_remote_code=self.trust_remote_code,
            **self.infer_options(),
            **({"recheck_margin": self.recheck_margin} if self.recheck_margin is not None else {}),
        )


def predict(
    spec,
    model_dir: str,
    payloads: list,
    batch_size: int = 32,
    device: str = "auto",
    max_length: int | None = None,
    on_error: str = "raise",
    **opts,
) -> list[dict]:
    """Records for payloads through tasktool.engine and the task's predictor, as `tasktool infer` makes them."""
    from tasktool.engine import Engine, Item
    from tasktool.options import InferOptions

    options = InferOptions(
        model=model_dir, device=device, batch_size=batch_size, max_length=max_length, **opts
    )
    predictor = spec.load_predictor()(spec, options)
    engine = Engine(predictor, batch_size=batch_size, on_error=on_error)
    return list(engine.run(Item(i, p) for i, p in enumerate(payloads)))


def known_labels(config) -> dict[str, int]:
    """label -> id of a classifier's config."""
    return {str(v): int(k) for k, v in (getattr(config, "id2label", None) or {}).items()}


def raise_first_error(records: list[dict]) -> None:
    """Generation tasks score every example: one that failed stops the evaluation, naming it."""
    bad = next((r for r in records if "error" in r), None)
    if bad is not None:
        raise TaskToolError(f"evaluation example {bad['id'] + 1}: {bad['error']}", "check that row")


def report_skipped(records: list[dict], kind: str, strict: bool) -> None:
    """Unreadable files skipped during an evaluation: one warning counting them (all bad: an error)."""
    from tasktool.io.media import report_unreadable

    bad = [(None, ItemError(r["error"])) for r in records if "error" in r]
    report_unreadable(bad, len(records), kind, "evaluation", strict=strict)
    if records and len(bad) == len(records):
        raise TaskToolError(
            f"none of the {len(records)} evaluation {kind} files can be read", "check the files and paths"
        )


def warn_below_baseline(metrics: dict) -> bool:
    """One warning line when the model does not beat the trivial answer scored beside it (the score's
    `baseline_<metric>` key); True when it does not."""
    from tasktool.console import warn

    for key, value in list(metrics.items()):
        if not key.startswith("baseline_") or not isinstance(value, (int, float)):
            continue
        name = key[len("baseline_") :]
        score = metrics.get(name)
        if isinstance(score, (int, float)) and score <= value:
            metrics["beats_baseline"] = False
            warn(
                f"the model does not beat the {metrics.get('baseline', 'trivial')} baseline: {name} "
                f"{score:.4f} against {value:.4f} (check the data, the labels and the training settings)"
            )
            return True
        metrics["beats_baseline"] = True
        return False
    return False
