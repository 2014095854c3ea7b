"""Fine-tuning causal language models on raw text (blocks of tokens; the shifted tokens are the labels)."""

from tasktool.tasks.language_model import LanguageModelTrainer


class Trainer(LanguageModelTrainer):
    causal = True
