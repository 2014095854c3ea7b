"""text-classification: one label (or top-k labels) per sentence or sentence pair."""

from __future__ import annotations

from tasktool.errors import ItemError
from tasktool.tasks.recheck import Rechecks
from tasktool.tasks.text import TextPredictor


class TextClassification(Rechecks, TextPredictor):
    shareable = True  # predict only reads the model and tokenizer: batches may run concurrently
    batch_by_tokens = True  # on a CPU with no batch option: tasktool.tasks.text.CPU_BATCHING
    arrays = "numpy"  # an exported model runs without torch
    batch_tokenize = True  # a text is prepared by tokenize() alone: the engine may tokenize a window at once

    def prepare(self, payload):
        if isinstance(payload, dict):  # a sentence pair
            first = payload.get("text") or payload.get("sentence1") or ""
            second = payload.get("text_pair") or payload.get("sentence2")
            if not str(first).strip():
                raise ItemError("empty input text", "give non-empty text")
            return self.report_cuts(
                self.tokenizer(first, second, truncation=True, max_length=self.max_length)
            )
        return self.tokenize(payload)

    def predict(self, batch):
        from tasktool.tasks.arrays import sigmoid, softmax, to_numpy, top_k

        inputs = self.collate(batch)
        logits = to_numpy(self.model(**inputs).logits)
        config = self.model.config
        multi = getattr(config, "problem_type", None) == "multi_label_classification"
        probs = sigmoid(logits) if multi else softmax(logits)
        if self.rechecker is not None:
            probs = self.rechecker.scores(probs, inputs, sigmoid if multi else softmax)
        k = min(self.opts.top_k or 1, probs.shape[-1])
        scores, ids = top_k(probs, k)
        id2label = config.id2label or {}
        out = []
        for row_scores, row_ids in zip(scores.tolist(), ids.tolist(), strict=True):
            labels = [
                {"label": id2label.get(i, f"LABEL_{i}"), "score": s}
                for i, s in zip(row_ids, row_scores, strict=True)
            ]
            record = {"label": labels[0]["label"], "score": labels[0]["score"]}
            if self.opts.top_k:
                record["labels"] = labels
            out.append(record)
        return out

    def display(self, record):
        return {"label": str(record["label"]), "score": f"{record['score']:.3f}"}


Predictor = TextClassification
