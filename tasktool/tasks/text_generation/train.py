"""Fine-tuning causal language models: raw text in blocks of tokens (the shifted tokens are the labels),
or chat conversations with the loss on the assistant turns only (every other label -100)."""

from tasktool.console import warn
from tasktool.errors import TaskToolError
from tasktool.tasks.language_model import LanguageModelTrainer
from tasktool.tasks.text_generation.chat import AssistantLabels, read_template
from tasktool.tasks.text_generation.data import is_chat_data

TEMPLATE_FIX = "--chat-template FILE (recipe key chat_template)"


class Trainer(LanguageModelTrainer):
    causal = True

    def load_processor(self, ref):
        tok = super().load_processor(ref)
        if self.recipe.get("chat_template"):  # saved with the tokenizer: infer and evaluate render the same
            tok.chat_template = read_template(self.recipe["chat_template"], "chat_template")
        self.base_ref = ref
        return tok

    def features(self, examples, tokenizer, train):
        if not is_chat_data(examples):
            return super().features(examples, tokenizer, train)
        return chat_features(
            examples,
            tokenizer,
            self.blocks.block_size(tokenizer, self.model.config),
            train,
            getattr(self, "base_ref", "the model"),
        )


def chat_features(examples, tokenizer, limit: int, train: bool, model_ref: str) -> list[dict]:
    """One sequence per conversation (no packing), cut to `limit` tokens; conversations whose assistant
    turns all fall beyond the cut are left out, with a warning."""
    labels = AssistantLabels(tokenizer, model_ref, TEMPLATE_FIX)
    feats, dropped = [], 0
    for ex in examples:
        feat = labels(ex["messages"], limit)
        if feat is None:
            dropped += 1
        else:
            feats.append(feat)
    if dropped:
        what = "training" if train else "evaluation"
        warn(f"{dropped} {what} conversations left out: no assistant token within the first {limit} tokens")
    if examples and not feats:
        raise TaskToolError(
            f"no conversation has an assistant token within the first {limit} tokens",
            "raise block_size / max_length, or shorten the conversations",
        )
    return feats
