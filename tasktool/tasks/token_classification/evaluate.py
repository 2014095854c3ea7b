"""Scoring token classifiers with seqeval.

The predictions are those of `tasktool infer ner --aggregation first` on the words joined by spaces;
its entities are turned back into one tag per word.
"""

from __future__ import annotations

from tasktool.evaluator import Evaluator as BaseEvaluator
from tasktool.evaluator import known_labels
from tasktool.metrics import seqeval_scores
from tasktool.tasks.token_classification.data import check_known_tags

AGGREGATION = "first"


class Evaluator(BaseEvaluator):
    def check(self, examples, config):
        self.known = known_labels(config)
        return check_known_tags(examples, self.known, "the evaluation data")

    def infer_options(self):
        return {"aggregation": AGGREGATION}

    def payload(self, ex):
        return join_words(ex["tokens"])[0]

    def score(self, examples, records):
        prefixed = any(tag[:2] in ("B-", "I-", "B_", "I_") for tag in self.known)
        preds = [
            entities_to_tags(r.get("entities") or [], join_words(ex["tokens"])[1], prefixed)
            for r, ex in zip(records, examples, strict=True)
        ]
        metrics = seqeval_scores(preds, [ex["ner_tags"] for ex in examples])
        rows = [
            {
                "id": i,
                "input": r["input"],
                "tags": ex["ner_tags"],
                "prediction": p,
                "entities": r.get("entities"),
            }
            for i, (r, ex, p) in enumerate(zip(records, examples, preds, strict=True))
        ]
        return metrics, rows


def join_words(words: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The words as one space-separated text, and each word's (start, end) in it."""
    spans, pos = [], 0
    for w in words:
        spans.append((pos, pos + len(w)))
        pos += len(w) + 1
    return " ".join(words), spans


def entities_to_tags(entities: list[dict], spans: list[tuple[int, int]], prefixed: bool = True) -> list[str]:
    """A word takes the entity covering its first character: B- where the entity starts, else I-
    (plain tags when the label set has no B-/I- prefixes)."""
    tags = []
    for start, _end in spans:
        tag = "O"
        for ent in entities:
            if ent["start"] <= start < ent["end"]:
                group = ent.get("entity_group") or ent.get("entity", "")
                tag = (("B-" if ent["start"] >= start else "I-") + group) if prefixed else group
                break
        tags.append(tag)
    return tags
