"""fill-mask: the likeliest tokens for each masked position.

Either spelling of the mask, `[MASK]` (BERT) or `<mask>` (RoBERTa), is accepted and rewritten to
the model's own. Record shape: `{"predictions": [...]}` with one mask; with several masks,
`{"predictions": [[...], [...]]}`, one list per mask in text order, each mask filled on its own
(the other masks stay masked in `sequence`).
"""

from __future__ import annotations

import re

from tasktool.errors import ItemError, TaskToolError
from tasktool.tasks.text import TextPredictor

SPELLINGS = ("[MASK]", "<mask>")


class FillMask(TextPredictor):
    shareable = True  # predict only reads the model and tokenizer: batches may run concurrently

    def __init__(self, spec, opts, **model_kwargs):
        super().__init__(spec, opts, **model_kwargs)
        self.mask = self.tokenizer.mask_token
        if not self.mask:
            raise TaskToolError(
                f"the tokenizer of '{opts.model}' has no mask token", "use a masked language model"
            )
        self.mask_id = self.tokenizer.mask_token_id
        others = [s for s in SPELLINGS if s != self.mask]
        self.pattern = re.compile("|".join(re.escape(s) for s in others)) if others else None

    def prepare(self, payload):
        text = payload if isinstance(payload, str) else ""
        if self.pattern is not None:
            text = self.pattern.sub(self.mask, text)
        if text.strip() and self.mask not in text:
            raise ItemError(
                f"no mask token in the input: put {self.mask} where the missing word goes",
                f"e.g. 'Paris is the {self.mask} of France'",
            )
        enc = self.tokenize(text, return_special_tokens_mask=True)
        positions = [i for i, t in enumerate(enc["input_ids"]) if t == self.mask_id]
        if not positions:
            raise ItemError(
                f"the {self.mask} token lies past the first {self.max_length} tokens",
                "move it earlier or shorten the text",
            )
        return {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            **({"token_type_ids": enc["token_type_ids"]} if "token_type_ids" in enc else {}),
            "special": enc["special_tokens_mask"],
            "positions": positions,
        }

    def _sequence(self, ids: list[int], special: list[int], pos: int, token: int) -> str:
        """The input with one mask filled; other masks kept, the other special tokens dropped."""
        kept = [
            token if i == pos else t
            for i, (t, s) in enumerate(zip(ids, special, strict=True))
            if not s or t == self.mask_id
        ]
        return self.tokenizer.decode(
            kept, skip_special_tokens=False, clean_up_tokenization_spaces=True
        ).strip()

    def predict(self, batch):
        import torch

        logits = self.model(**self.collate(batch)).logits
        k = min(self.opts.top_k or 5, logits.shape[-1])
        out = []
        for row, item in enumerate(batch):
            per_mask = []
            for pos in item["positions"]:
                probs = torch.softmax(logits[row, pos].float(), dim=-1)
                scores, ids = probs.topk(k)
                per_mask.append(
                    [
                        {
                            "token_str": self.tokenizer.decode([tid]).strip(),
                            "token": tid,
                            "score": score,
                            "sequence": self._sequence(item["input_ids"], item["special"], pos, tid),
                        }
                        for tid, score in zip(ids.tolist(), scores.tolist(), strict=True)
                    ]
                )
            out.append({"predictions": per_mask[0] if len(per_mask) == 1 else per_mask})
        return out

    def display(self, record):
        preds = record.get("predictions") or []
        masks = preds if preds and isinstance(preds[0], list) else [preds]
        cells = [", ".join(f"{p['token_str']} ({p['score']:.2f})" for p in mask) for mask in masks]
        return {"predictions": " | ".join(cells)}


Predictor = FillMask
