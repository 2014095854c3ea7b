"""text-generation: continue a prompt with a causal LM (GPT-2 style).

Batches are LEFT-padded so every prompt ends where generation starts; `generate` derives the
position ids from the attention mask, so a padded batch gives the same text as one prompt at a
time. A prompt longer than the context window keeps its LAST tokens (the ones the continuation
follows), leaving room for --max-new-tokens.
"""

from __future__ import annotations

from tasktool.errors import ItemError, TaskToolError
from tasktool.tasks.text import TextPredictor, model_max_length

DEFAULT_MAX_NEW_TOKENS = 50


class TextGeneration(TextPredictor):
    padding_side = "left"

    def __init__(self, spec, opts, **model_kwargs):
        super().__init__(spec, opts, **model_kwargs)
        tok, gen_config = self.tokenizer, self.model.generation_config
        if tok.pad_token is None:  # GPT-2 and most causal LMs have no pad token: pad with eos (masked anyway)
            if tok.eos_token is None:
                raise TaskToolError(
                    f"tokenizer of '{opts.model}' has neither a pad nor an eos token",
                    "this model cannot be batched; check the model folder",
                )
            tok.pad_token = tok.eos_token
        if gen_config.pad_token_id is None:
            gen_config.pad_token_id = tok.pad_token_id
        self.gen_kwargs = opts.generation_kwargs(gen_config.max_new_tokens or DEFAULT_MAX_NEW_TOKENS)
        self.max_new_tokens = self.gen_kwargs["max_new_tokens"]
        context = model_max_length(tok, self.model.config)
        room = context - self.max_new_tokens
        if room < 1:
            raise TaskToolError(
                f"--max-new-tokens {self.max_new_tokens} leaves no room for the prompt in the model's "
                f"context of {context} tokens",
                f"use --max-new-tokens below {context}",
            )
        self.prompt_limit = min(room, opts.max_length) if opts.max_length else room
        self._warned_truncation = False

    def prepare(self, payload):
        if not isinstance(payload, str) or not payload.strip():
            raise ItemError("empty prompt", "give non-empty text")
        full = self.tokenizer(payload)["input_ids"]
        ids = truncate_left(full, self.prompt_limit, self.tokenizer.bos_token_id)
        if len(ids) < len(full) and not self._warned_truncation:
            from tasktool.console import warn

            self._warned_truncation = True
            warn(
                f"a prompt of {len(full)} tokens keeps only its last {len(ids)} "
                f"(context window minus --max-new-tokens {self.max_new_tokens})"
            )
        return {"prompt": payload, "input_ids": ids, "attention_mask": [1] * len(ids)}

    def length(self, prepared) -> int:
        return len(prepared["input_ids"]) + self.max_new_tokens

    def predict(self, batch):
        inputs = self.collate(batch, keys=("input_ids", "attention_mask"))
        output = self.model.generate(**inputs, **self.gen_kwargs)
        width = inputs["input_ids"].shape[1]
        records = []
        for item, row in zip(batch, output[:, width:].tolist(), strict=True):
            continuation = self.continuation(item["input_ids"], row)
            records.append({"generated_text": item["prompt"] + continuation, "continuation": continuation})
        return records

    def continuation(self, prompt_ids: list[int], new_ids: list[int]) -> str:
        """Decode prompt+new and cut the decoded prompt off, so a leading space (SentencePiece) survives."""
        decode = self.tokenizer.decode
        prefix = decode(prompt_ids, skip_special_tokens=True)
        full = decode(list(prompt_ids) + list(new_ids), skip_special_tokens=True)
        if full.startswith(prefix):
            return full[len(prefix) :]
        return decode(new_ids, skip_special_tokens=True)

    def display(self, record):
        from tasktool.io.writers import short

        return {"continuation": short(record["continuation"], 100)}


def truncate_left(ids: list[int], limit: int, bos_id: int | None = None) -> list[int]:
    """Keep the last `limit` tokens (they lead into the continuation), and a leading BOS if there was one."""
    if len(ids) <= limit:
        return list(ids)
    if bos_id is not None and ids and ids[0] == bos_id and limit > 1:
        return [ids[0], *ids[len(ids) - limit + 1 :]]
    return list(ids[len(ids) - limit :])


Predictor = TextGeneration
