"""Scoring summaries (ROUGE) and translations (sacreBLEU, chrF) of the texts `tasktool infer` generates."""

from __future__ import annotations

from tasktool.evaluator import Evaluator as BaseEvaluator
from tasktool.evaluator import raise_first_error
from tasktool.tasks.seq2seq.data import is_translation, languages


def score(spec, predictions: list[str], references: list[str]) -> dict:
    from tasktool.metrics import bleu_chrf, rouge

    return bleu_chrf(predictions, references) if is_translation(spec) else rouge(predictions, references)


class Evaluator(BaseEvaluator):
    def infer_options(self):
        if not is_translation(self.spec):
            return {}
        src, tgt = languages(self.recipe)
        return {"source_lang": src, "target_lang": tgt}

    def payload(self, ex):
        return ex["source"]

    def score(self, examples, records):
        raise_first_error(records)
        field = "translation_text" if is_translation(self.spec) else "summary_text"
        preds = [r[field] for r in records]
        metrics = score(self.spec, preds, [ex["target"] for ex in examples])
        metrics.update(copy_baseline(self.spec, examples))
        rows = [
            {"id": i, "input": ex["source"], "reference": ex["target"], "prediction": p}
            for i, (ex, p) in enumerate(zip(examples, preds, strict=True))
        ]
        return metrics, rows


def copy_baseline(spec, examples: list[dict]) -> dict:
    """The score of answering with the source text itself (a model that learnt nothing but to copy)."""
    sources, refs = [ex["source"] for ex in examples], [ex["target"] for ex in examples]
    copied = score(spec, sources, refs)
    keys = ("bleu", "chrf") if is_translation(spec) else ("rougeL", "rouge1")
    return {"baseline": "copy the source", **{f"baseline_{k}": copied[k] for k in keys}}
