"""Fine-tuning text classifiers (single sentences or sentence pairs)."""

from __future__ import annotations

from tasktool.tasks.classes import accuracy_hooks, check_known_labels, training_labels
from tasktool.training.trainer import TaskTrainer


class Trainer(TaskTrainer):
    loss_units = "rows"
    best_metric = "accuracy"
    trainer_metric_names = ("accuracy",)

    def label_set(self, examples):
        return training_labels(self.recipe, examples)

    def check_labels(self, examples, known, source_name):
        return check_known_labels(examples, known, source_name)

    def logits_metrics(self, eval_examples, eval_features):
        return accuracy_hooks(self.labels or [], [ex["label"] for ex in eval_examples])

    def features(self, examples, tokenizer, train):
        label2id = {label: i for i, label in enumerate(self.labels or [])}
        max_length = self.recipe.get("max_length") or None
        feats = []
        for ex in examples:
            enc = tokenizer(ex["text"], ex.get("text_pair") or None, truncation=True, max_length=max_length)
            feat = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
            feat["labels"] = label2id.get(ex["label"], -100)  # a label unseen in training: no loss
            feats.append(feat)
        return feats
