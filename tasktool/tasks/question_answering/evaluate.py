"""Scoring question answering: SQuAD exact match and F1 of the answers `tasktool infer qa` gives
(the predictor decodes the spans; nothing is decoded twice)."""

from __future__ import annotations

from tasktool.evaluator import Evaluator as BaseEvaluator
from tasktool.metrics import squad


class Evaluator(BaseEvaluator):
    def infer_options(self):
        return {
            "stride": int(self.recipe.get("stride") or 128),
            "max_answer_length": int(self.recipe.get("max_answer_length") or 30),
        }

    def payload(self, ex):
        return {"question": ex["question"], "context": ex["context"]}

    def score(self, examples, records):
        preds = [r.get("answer", "") for r in records]
        metrics = squad(preds, [ex["answers"]["text"] for ex in examples])
        rows = [
            {
                "id": ex["id"],
                "question": ex["question"],
                "answers": ex["answers"]["text"],
                "prediction": p,
                "score": r.get("score"),
            }
            for ex, r, p in zip(examples, records, preds, strict=True)
        ]
        return metrics, rows
