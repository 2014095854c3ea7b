"""Scoring token classifiers with seqeval, word by word on the GIVEN words.

Each labelled sentence goes to the engine as its list of words (the NER predictor's pre-tokenized
input): every word takes its first subword's label, as run_ner.py and seqeval practice score, so a
word is never split or merged by re-tokenizing a joined text. Beside the scores: the all-"O"
baseline and per-entity-type precision/recall/F1.
"""

from __future__ import annotations

from tasktool.evaluator import Evaluator as BaseEvaluator
from tasktool.evaluator import known_labels
from tasktool.metrics import seqeval_scores
from tasktool.tasks.token_classification.data import check_known_tags

AGGREGATION = "first"


class Evaluator(BaseEvaluator):
    quiet_unseen = False  # the fine-tuning run warned about unseen tags already

    def check(self, examples, config):
        self.known = known_labels(config)
        return check_known_tags(examples, self.known, "the evaluation data", quiet=self.quiet_unseen)

    def infer_options(self):
        return {"aggregation": AGGREGATION}

    def payload(self, ex):
        return list(ex["tokens"])

    def score(self, examples, records):
        preds = [r["tags"] for r in records]
        refs = [ex["ner_tags"] for ex in examples]
        metrics = seqeval_scores(preds, refs)
        metrics.update(all_o_baseline(refs))
        self.details = {"per_class": per_entity(preds, refs)}
        unseen = sorted({t for tags in refs for t in tags} - set(self.known))
        if unseen:
            self.details["unseen_labels"] = unseen
        rows = [
            {
                "id": i,
                "input": " ".join(ex["tokens"]),
                "tags": ex["ner_tags"],
                "prediction": p,
                "entities": r.get("entities"),
            }
            for i, (r, ex, p) in enumerate(zip(records, examples, preds, strict=True))
        ]
        return metrics, rows


def all_o_baseline(refs: list[list[str]]) -> dict:
    """Tagging every word "O": entity F1 0, and the token accuracy of the most common tag."""
    scores = seqeval_scores([["O"] * len(r) for r in refs], refs)
    return {
        "baseline": "all O",
        "baseline_f1": scores["f1"],
        "baseline_token_accuracy": scores["token_accuracy"],
    }


def per_entity(preds: list[list[str]], refs: list[list[str]]) -> dict:
    """seqeval's precision/recall/F1/support per entity type."""
    from seqeval.metrics import classification_report

    try:
        report = classification_report(refs, preds, output_dict=True, zero_division=0)
    except Exception:  # no entity at all in references or predictions
        return {}
    return {
        name: {
            "precision": float(v["precision"]),
            "recall": float(v["recall"]),
            "f1": float(v["f1-score"]),
            "support": int(v["support"]),
        }
        for name, v in report.items()
        if name not in ("micro avg", "macro avg", "weighted avg")
    }


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
