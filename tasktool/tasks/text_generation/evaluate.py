"""Scoring causal language models: perplexity of held-out text, or of the assistant turns of held-out
conversations (the same assistant-only labels as training)."""

from tasktool.errors import TaskToolError
from tasktool.tasks.language_model import Blocks, PerplexityEvaluator
from tasktool.tasks.text_generation.chat import read_template
from tasktool.tasks.text_generation.data import is_chat_data


class Evaluator(PerplexityEvaluator):
    causal = True

    def eval_features(self, examples, tokenizer, config):
        if not is_chat_data(examples):
            return super().eval_features(examples, tokenizer, config)
        from tasktool.tasks.text_generation.train import chat_features

        given = self.recipe.get("chat_template")  # --chat-template, or the training run's (saved recipe)
        if given:
            try:
                tokenizer.chat_template = read_template(given, "--chat-template")
            except TaskToolError:
                if not getattr(tokenizer, "chat_template", None):
                    raise  # the trained tokenizer carries the template: a moved file does not matter
        limit = Blocks(self.recipe, True).block_size(tokenizer, config)
        feats = chat_features(
            examples, tokenizer, limit, False, getattr(tokenizer, "name_or_path", "the model")
        )
        return [{"input_ids": f["input_ids"], "labels": f["labels"]} for f in feats]
