"""Fine-tuning token classifiers (NER, POS): one tag per word.

Word tags are aligned to subwords: the first subword of a word carries its tag, the rest are
ignored unless label_all_tokens. The Trainer's evaluations score seqeval F1 word by word, from the
first subword's label, as the final evaluation does.
"""

from __future__ import annotations

from tasktool.errors import TaskToolError
from tasktool.tasks.classes import declared_labels
from tasktool.tasks.token_classification.data import check_known_tags, tag_key
from tasktool.training.trainer import TaskTrainer


class Trainer(TaskTrainer):
    loss_units = "tokens"
    best_metric = "f1"
    trainer_metric_names = ("f1", "precision", "recall")

    def label_set(self, examples):
        declared = declared_labels(self.recipe, examples, "tag", tag_key)
        if declared:
            return declared
        return sorted({tag for ex in examples for tag in ex["ner_tags"]}, key=tag_key)

    def check_labels(self, examples, known, source_name):
        return check_known_tags(examples, known, source_name)

    def collator(self, tokenizer):
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer)

    def features(self, examples, tokenizer, train):
        if not getattr(tokenizer, "is_fast", False):
            raise TaskToolError(
                "NER fine-tuning needs a fast tokenizer (word ids)", "use a model with tokenizer.json"
            )
        label2id = {label: i for i, label in enumerate(self.labels or [])}
        inside = {i: label2id.get("I-" + lb[2:], i) for lb, i in label2id.items() if lb.startswith("B-")}
        all_tokens = bool(self.recipe.get("label_all_tokens"))
        max_length = self.recipe.get("max_length") or None
        feats, firsts = [], []
        for ex in examples:
            enc = tokenizer(ex["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
            labels, previous = [], None
            first: list[int | None] = [None] * len(ex["tokens"])  # each word's first subword
            for pos, word in enumerate(enc.word_ids()):
                if word is None:
                    labels.append(-100)
                elif word != previous:
                    labels.append(label2id.get(ex["ner_tags"][word], -100))  # unseen tag: no loss
                    first[word] = pos
                else:
                    tag = label2id.get(ex["ner_tags"][word], -100)
                    labels.append(inside.get(tag, tag) if all_tokens else -100)
                previous = word
            feat = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
            feat["labels"] = labels
            feats.append(feat)
            firsts.append(first)
        if not train:
            self.eval_first_subwords = firsts
        return feats

    def logits_metrics(self, eval_examples, eval_features):
        """seqeval P/R/F1 on the evaluation words: each word takes its first subword's label; words cut
        off by max_length count as O; tags unseen in training are misses."""
        from tasktool.metrics import seqeval_scores

        labels, firsts = list(self.labels or []), self.eval_first_subwords
        refs = [ex["ner_tags"] for ex in eval_examples]

        def preprocess(logits, _labels):
            if isinstance(logits, tuple):
                logits = logits[0]
            return logits.argmax(-1)

        def compute(pred) -> dict:
            ids = pred.predictions
            preds = [
                [labels[int(ids[i][pos])] if pos is not None and pos < ids.shape[1] else "O" for pos in first]
                for i, first in enumerate(firsts)
            ]
            scores = seqeval_scores(preds, refs)
            return {k: scores[k] for k in ("f1", "precision", "recall")}

        return compute, preprocess
