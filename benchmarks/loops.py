"""The hand-written baselines: what a careful user writes without tasktool.

Tokenize everything in one call, sort by length, pad each batch to its own longest item with
`tokenizer.pad`, run under `torch.inference_mode()`, put results back in input order.
"""

from __future__ import annotations

KEYS = ("input_ids", "attention_mask", "token_type_ids")


def _sorted_batches(lengths: list[int], batch_size: int):
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _pad(tokenizer, enc, idx: list[int]):
    return tokenizer.pad({k: [enc[k][i] for i in idx] for k in KEYS if k in enc}, return_tensors="pt")


def classify(model, tokenizer, texts: list[str], batch_size: int) -> list[str]:
    import torch

    enc = tokenizer(texts, truncation=True, max_length=512)
    id2label = model.config.id2label
    out: list = [None] * len(texts)
    with torch.inference_mode():
        for idx in _sorted_batches([len(x) for x in enc["input_ids"]], batch_size):
            probs = torch.softmax(model(**_pad(tokenizer, enc, idx)).logits.float(), dim=-1)
            scores, ids = probs.max(dim=-1)
            for i, label_id, score in zip(idx, ids.tolist(), scores.tolist(), strict=True):
                out[i] = (id2label[label_id], score)
    return [label for label, _ in out]


def _split(label: str) -> tuple[str, str]:
    if label.startswith("B-"):
        return "B", label[2:]
    if label.startswith("I-"):
        return "I", label[2:]
    return "I", label


def tag(model, tokenizer, texts: list[str], batch_size: int) -> list[list[tuple]]:
    """NER with 'simple' grouping: consecutive tokens of one tag form an entity, B- starts a new one."""
    import torch

    enc = tokenizer(
        texts, truncation=True, max_length=512, return_offsets_mapping=True, return_special_tokens_mask=True
    )
    id2label = model.config.id2label
    out: list = [None] * len(texts)
    with torch.inference_mode():
        for idx in _sorted_batches([len(x) for x in enc["input_ids"]], batch_size):
            probs = torch.softmax(model(**_pad(tokenizer, enc, idx)).logits.float(), dim=-1)
            scores, ids = probs.max(dim=-1)
            for row, i in enumerate(idx):
                entities: list[list] = []
                last = None
                for t, (start, end) in enumerate(enc["offset_mapping"][i]):
                    if enc["special_tokens_mask"][i][t] or start == end:
                        continue
                    bi, name = _split(id2label[int(ids[row, t])])
                    if last is not None and bi != "B" and last[0] == name:
                        last[2] = end
                    else:
                        last = [name, start, end]
                        entities.append(last)
                out[i] = [(name, s, e) for name, s, e in entities if name != "O"]
    return out


def answer(model, tokenizer, pairs: list[dict], batch_size: int, max_answer_length: int = 30) -> list[tuple]:
    """Extractive QA: best context span by start+end logit, or no answer when [CLS] scores higher."""
    import torch

    enc = tokenizer(
        [p["question"] for p in pairs],
        [p["context"] for p in pairs],
        truncation="only_second",
        max_length=512,
        return_offsets_mapping=True,
    )
    out: list = [None] * len(pairs)
    with torch.inference_mode():
        for idx in _sorted_batches([len(x) for x in enc["input_ids"]], batch_size):
            result = model(**_pad(tokenizer, enc, idx))
            start_l, end_l = result.start_logits.float(), result.end_logits.float()
            n = start_l.shape[1]
            band = torch.ones(n, n, dtype=torch.bool).triu() & torch.ones(n, n, dtype=torch.bool).tril(
                max_answer_length - 1
            )
            ok = torch.zeros(len(idx), n, dtype=torch.bool)
            for row, i in enumerate(idx):
                seq = enc.sequence_ids(i)
                for t, (s, e) in enumerate(enc["offset_mapping"][i]):
                    ok[row, t] = seq[t] == 1 and e > s
            scores = start_l[:, :, None] + end_l[:, None, :]
            scores = scores.masked_fill(~(ok[:, :, None] & ok[:, None, :] & band), float("-inf"))
            best = scores.view(len(idx), -1).max(dim=-1)
            null = start_l[:, 0] + end_l[:, 0]
            for row, i in enumerate(idx):
                flat = int(best.indices[row])
                if float(null[row]) > float(best.values[row]):
                    out[i] = ("", 0, 0)
                    continue
                s, e = divmod(flat, n)
                offsets = enc["offset_mapping"][i]
                start, end = offsets[s][0], offsets[e][1]
                out[i] = (pairs[i]["context"][start:end], start, end)
    return out
