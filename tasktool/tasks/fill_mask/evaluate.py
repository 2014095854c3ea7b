"""Scoring masked LMs: perplexity on the held-out blocks, masked as in training but with a fixed seed
per block, so it is the same for any batch size and on every run."""

from __future__ import annotations

import random

from tasktool.errors import TaskToolError
from tasktool.tasks.language_model import Blocks, PerplexityEvaluator


def probability(recipe: dict) -> float:
    p = float(recipe.get("mlm_probability") or 0.15)
    if not 0 < p < 1:
        raise TaskToolError(f"mlm_probability must be between 0 and 1, got {p}", "e.g. mlm_probability=0.15")
    return p


class Evaluator(PerplexityEvaluator):
    causal = False

    def eval_features(self, examples, tokenizer, config):
        check_mask(tokenizer)
        seed, p = int(self.recipe.get("seed") or 42), probability(self.recipe)
        feats = []
        for n, block in enumerate(Blocks(self.recipe, causal=False)(examples, tokenizer, config)):
            special = tokenizer.get_special_tokens_mask(block, already_has_special_tokens=True)
            inputs, labels = mask_block(
                block, special, tokenizer.mask_token_id, len(tokenizer), p, random.Random(f"{seed}-{n}")
            )
            feats.append({"input_ids": inputs, "labels": labels})
        return feats


def check_mask(tokenizer) -> None:
    if tokenizer.mask_token_id is None:
        raise TaskToolError(
            "this model's tokenizer has no mask token", "fill-mask needs a masked LM (BERT, RoBERTa)"
        )
    if tokenizer.pad_token_id is None:
        raise TaskToolError(
            "this model's tokenizer has no padding token", "fill-mask needs a masked LM (BERT, RoBERTa)"
        )


def mask_block(
    ids: list[int], special: list[int], mask_id: int, vocab: int, p: float, rng: random.Random
) -> tuple[list[int], list[int]]:
    """BERT masking of one block (at least one token), reproducible from `rng`."""
    candidates = [i for i, s in enumerate(special) if not s]
    chosen = [i for i in candidates if rng.random() < p]
    if not chosen and candidates:
        chosen = [rng.choice(candidates)]
    inputs, labels = list(ids), [-100] * len(ids)
    for i in chosen:
        labels[i] = ids[i]
        roll = rng.random()
        if roll < 0.8:
            inputs[i] = mask_id
        elif roll < 0.9:
            inputs[i] = rng.randrange(vocab)
    return inputs, labels
