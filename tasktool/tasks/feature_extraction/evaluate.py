"""Scoring sentence embeddings on scored pairs (STS-B practice): the Spearman and Pearson correlations
between the pairs' cosine similarities and their gold scores (torchmetrics)."""

from __future__ import annotations

from tasktool.errors import TaskToolError
from tasktool.evaluator import Evaluator as BaseEvaluator


class Evaluator(BaseEvaluator):
    def payload(self, ex):
        return {"text": ex["text"], "text_pair": ex["text_pair"]}

    def score(self, examples, records):
        import torch
        from torchmetrics.functional import pearson_corrcoef, spearman_corrcoef

        if len(examples) < 2:
            raise TaskToolError("a correlation needs at least 2 scored pairs", "give more evaluation pairs")
        sims = torch.tensor([r["similarity"] for r in records], dtype=torch.float64)
        gold = torch.tensor([ex["score"] for ex in examples], dtype=torch.float64)
        metrics = {
            "spearman": float(spearman_corrcoef(sims, gold)),
            "pearson": float(pearson_corrcoef(sims, gold)),
        }
        rows = [
            {
                "id": i,
                "input": [ex["text"], ex["text_pair"]],
                "score": ex["score"],
                "similarity": r["similarity"],
            }
            for i, (ex, r) in enumerate(zip(examples, records, strict=True))
        ]
        return metrics, rows
