"""Scoring text classifiers: accuracy and macro-F1 over the engine's labels, beside the majority-class
baseline; per-label precision/recall/F1 and a confusion matrix picture for a fine-tuned model's folder."""

from __future__ import annotations

from tasktool.evaluator import Evaluator as BaseEvaluator
from tasktool.evaluator import known_labels
from tasktool.metrics import classification as classification_metrics
from tasktool.tasks.classes import check_known_labels, classifier_report, confusion_artifacts


class Evaluator(BaseEvaluator):
    quiet_unseen = False  # the fine-tuning run warned about unseen labels already

    def check(self, examples, config):
        self.id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
        return check_known_labels(
            examples, known_labels(config), "the evaluation data", quiet=self.quiet_unseen
        )

    def payload(self, ex):
        if ex.get("text_pair"):
            return {"text": ex["text"], "text_pair": ex["text_pair"]}
        return ex["text"]

    def score(self, examples, records):
        preds = [r["label"] for r in records]
        refs = [ex["label"] for ex in examples]
        metrics = classification_metrics(preds, refs)
        metrics.update(classifier_report(self, preds, refs))
        rows = [
            {"id": i, "input": r["input"], "label": ex["label"], "prediction": p, "score": r["score"]}
            for i, (r, ex, p) in enumerate(zip(records, examples, preds, strict=True))
        ]
        return metrics, rows

    def artifacts(self, folder):
        if not getattr(self, "last", None):
            return []
        return confusion_artifacts(folder, *self.last)
