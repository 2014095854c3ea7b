"""What text tasks share: load tokenizer + model, tokenize per item, pad per batch."""

from __future__ import annotations

from tasktool.engine import Predictor
from tasktool.errors import ItemError


class TextPredictor(Predictor):
    """Tokenizes each input once (no padding); batches are padded to their own longest item."""

    auto_class: str | None = None  # default: the task's model class
    padding_side = "right"

    def __init__(self, spec, opts, **model_kwargs):
        from tasktool import runtime

        self.spec, self.opts = spec, opts
        self.tokenizer = runtime.load_tokenizer(opts.model, revision=opts.revision,
                                                trust_remote_code=opts.trust_remote_code)
        self.tokenizer.padding_side = self.padding_side
        self.model = runtime.load_model(spec, opts.model, revision=opts.revision, device=opts.device,
                                        dtype=opts.dtype, trust_remote_code=opts.trust_remote_code,
                                        auto_class=self.auto_class, allow_pickle=opts.allow_pickle,
                                        **model_kwargs)
        self.device = self.model.device
        if opts.compile:
            import torch

            self.model = torch.compile(self.model)
        self.max_length = opts.max_length or model_max_length(self.tokenizer, self.model.config)

    def tokenize(self, text: str, **kwargs) -> dict:
        if not isinstance(text, str) or not text.strip():
            raise ItemError("empty input text", "give non-empty text")
        return self.tokenizer(text, truncation=True, max_length=self.max_length, **kwargs)

    def prepare(self, payload):
        return self.tokenize(payload)

    def length(self, prepared) -> int:
        return len(prepared["input_ids"])

    def collate(self, batch: list[dict], keys=("input_ids", "attention_mask", "token_type_ids")):
        features = [{k: f[k] for k in keys if k in f} for f in batch]
        padded = self.tokenizer.pad(features, return_tensors="pt")
        return {k: v.to(self.device) for k, v in padded.items()}


def model_max_length(tokenizer, config, fallback: int = 512) -> int:
    """The longest input the model takes: the tokenizer's limit, capped by the position table."""
    limits = [fallback]
    tok_max = getattr(tokenizer, "model_max_length", None)
    if tok_max and tok_max < 1_000_000:
        limits = [tok_max]
    for attr in ("max_position_embeddings", "n_positions"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            # RoBERTa-style position ids start after the padding index
            offset = 2 if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") else 0
            limits.append(value - offset)
    return min(limits)
