"""Fine-tuning extractive question answering (SQuAD format).

Training cuts long contexts into overlapping windows (`stride`) and marks the answer's start/end
token in each window ([CLS] where the answer is outside it).
"""

from __future__ import annotations

from tasktool.errors import TaskToolError
from tasktool.training.trainer import TaskTrainer


class Trainer(TaskTrainer):
    # no micro-batches: the span loss is a softmax over every position, padding included, so
    # trimming a part's padding would change the loss (batches stay whole)
    def features(self, examples, tokenizer, train):
        if not getattr(tokenizer, "is_fast", False):
            raise TaskToolError(
                "QA fine-tuning needs a fast tokenizer (offsets)", "use a model with tokenizer.json"
            )
        max_length = int(self.recipe.get("max_length") or 384)
        specials = tokenizer.num_special_tokens_to_add(pair=True)
        feats = []
        for ex in examples:
            q_len = len(tokenizer(ex["question"], add_special_tokens=False)["input_ids"])
            room = max_length - q_len - specials
            if room < 2:
                raise TaskToolError(
                    f"{ex.get('_where', 'a row')}: question too long ({q_len} tokens) for "
                    f"max_length {max_length}",
                    "raise max_length=... or shorten the question",
                )
            stride = min(int(self.recipe.get("stride") or 0), room // 2)
            enc = tokenizer(
                ex["question"],
                ex["context"],
                truncation="only_second",
                max_length=max_length,
                stride=stride,
                return_overflowing_tokens=True,
                return_offsets_mapping=True,
            )
            for w in range(len(enc["input_ids"])):
                ids = enc["input_ids"][w]
                start, end = _positions(
                    ids, enc["offset_mapping"][w], enc.sequence_ids(w), ex["answers"], tokenizer.cls_token_id
                )
                feat = {
                    "input_ids": ids,
                    "attention_mask": enc["attention_mask"][w],
                    "start_positions": start,
                    "end_positions": end,
                }
                if "token_type_ids" in enc:
                    feat["token_type_ids"] = enc["token_type_ids"][w]
                feats.append(feat)
        return feats


def _positions(ids, offsets, seq_ids, answers, cls_id) -> tuple[int, int]:
    """Start/end token of the first answer in this window, or the [CLS] index when it is not inside."""
    cls = ids.index(cls_id) if cls_id is not None and cls_id in ids else 0
    if not answers["text"]:
        return cls, cls
    start_char = answers["answer_start"][0]
    end_char = start_char + len(answers["text"][0])
    ctx = [i for i, s in enumerate(seq_ids) if s == 1]
    if not ctx:
        return cls, cls
    first, last = ctx[0], ctx[-1]
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return cls, cls
    start = first
    while start <= last and offsets[start][0] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end][1] >= end_char:
        end -= 1
    return start - 1, end + 1
