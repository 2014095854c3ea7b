"""Fine-tuning token classifiers (NER, POS): one tag per word.

Word tags are aligned to subwords: the first subword of a word carries its tag, the rest are
ignored unless label_all_tokens.
"""

from __future__ import annotations

from tasktool.errors import TaskToolError
from tasktool.tasks.token_classification.data import check_known_tags, tag_key
from tasktool.training.trainer import TaskTrainer


class Trainer(TaskTrainer):
    loss_units = "tokens"

    def label_set(self, examples):
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
        feats = []
        for ex in examples:
            enc = tokenizer(ex["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
            labels, previous = [], None
            for word in enc.word_ids():
                if word is None:
                    labels.append(-100)
                elif word != previous:
                    labels.append(label2id[ex["ner_tags"][word]])
                else:
                    tag = label2id[ex["ner_tags"][word]]
                    labels.append(inside.get(tag, tag) if all_tokens else -100)
                previous = word
            feat = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
            feat["labels"] = labels
            feats.append(feat)
        return feats
