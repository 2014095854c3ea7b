"""Scoring speech recognition: WER and CER on normalised text (case, punctuation and spacing do not
count), plus the raw WER; unreadable clips are skipped and counted."""

from __future__ import annotations

import re
import unicodedata

from tasktool.errors import TaskToolError
from tasktool.tasks.media_classes import MediaClassEvaluator


def normalize_text(text: str) -> str:
    """For scoring: NFKC, lower case, punctuation to spaces (inner apostrophes kept), single spaces."""
    text = unicodedata.normalize("NFKC", str(text)).lower()
    text = re.sub(r"[^\w\s']|_", " ", text)
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)
    return " ".join(text.split())


def asr_metrics(predictions: list[str], references: list[str]) -> dict[str, float]:
    """WER/CER on normalised text, plus the raw WER (case and punctuation counted)."""
    import jiwer

    refs = [normalize_text(r) for r in references]
    preds = [normalize_text(p) for p in predictions]
    pairs = [(p, r) for p, r in zip(preds, refs, strict=True) if r]
    if not pairs:
        raise TaskToolError(
            "every reference transcription is empty after normalisation", "check the transcription column"
        )
    preds, refs = [p for p, _ in pairs], [r for _, r in pairs]
    return {
        "wer": float(jiwer.wer(refs, preds)),
        "cer": float(jiwer.cer(refs, preds)),
        "wer_unnormalized": float(
            jiwer.wer([r.strip() or "-" for r in references], [p.strip() for p in predictions])
        ),
    }


class Evaluator(MediaClassEvaluator):
    kind = "audio"

    def check(self, examples, config):
        return examples

    def infer_options(self):
        opts = {}
        if self.recipe.get("generation_max_new_tokens"):
            opts["max_new_tokens"] = int(self.recipe["generation_max_new_tokens"])
        if self.recipe.get("num_beams"):
            opts["num_beams"] = int(self.recipe["num_beams"])
        return opts

    def score(self, examples, records):
        pairs = [(r, ex) for r, ex in zip(records, examples, strict=True) if "error" not in r]
        metrics = asr_metrics([r["text"] for r, _ in pairs], [ex["text"] for _, ex in pairs])
        metrics["examples"] = len(pairs)
        if len(pairs) < len(records):
            metrics["skipped"] = len(records) - len(pairs)
        rows = [
            {
                "id": i,
                "input": r["input"],
                "reference": ex["text"],
                "prediction": r["text"],
                "wer": asr_metrics([r["text"]], [ex["text"]])["wer"] if normalize_text(ex["text"]) else None,
            }
            for i, (r, ex) in enumerate(pairs)
        ]
        return metrics, rows

    def artifacts(self, folder):
        return []
