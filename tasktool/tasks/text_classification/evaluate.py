"""Scoring text classifiers: accuracy and macro-F1 over the engine's labels."""

from __future__ import annotations

from tasktool.evaluator import Evaluator as BaseEvaluator
from tasktool.evaluator import known_labels
from tasktool.metrics import classification as classification_metrics
from tasktool.tasks.classes import check_known_labels


class Evaluator(BaseEvaluator):
    def check(self, examples, config):
        return check_known_labels(examples, known_labels(config), "the evaluation data")

    def payload(self, ex):
        if ex.get("text_pair"):
            return {"text": ex["text"], "text_pair": ex["text_pair"]}
        return ex["text"]

    def score(self, examples, records):
        preds = [r["label"] for r in records]
        metrics = classification_metrics(preds, [ex["label"] for ex in examples])
        rows = [
            {"id": i, "input": r["input"], "label": ex["label"], "prediction": p, "score": r["score"]}
            for i, (r, ex, p) in enumerate(zip(records, examples, preds, strict=True))
        ]
        return metrics, rows
