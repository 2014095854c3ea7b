"""Masked-LM domain adaptation (fill-mask): BERT/RoBERTa-style models trained on raw text.

Training masks `mlm_probability` of the tokens at random per batch (DataCollatorForLanguageModeling:
80% [MASK], 10% a random token, 10% unchanged).
"""

from __future__ import annotations

from tasktool.tasks.fill_mask.evaluate import check_mask, probability
from tasktool.tasks.language_model import LanguageModelTrainer


class Trainer(LanguageModelTrainer):
    causal = False

    def features(self, examples, tokenizer, train):
        check_mask(tokenizer)
        return [
            {"input_ids": b, "attention_mask": [1] * len(b)}
            for b in self.blocks(examples, tokenizer, self.model.config)
        ]

    def collator(self, tokenizer):
        from transformers import DataCollatorForLanguageModeling

        return DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=probability(self.recipe))
