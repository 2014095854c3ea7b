"""token-classification (NER, POS): a label per token, optionally grouped into entities.

Offsets come from the fast tokenizer, so every `word` is exactly `text[start:end]` (no
detokenisation guesswork). Grouping follows the classic Hugging Face pipeline: `simple` merges
consecutive tokens of one tag (B-/I- prefixes understood); `first`, `average` and `max` first
give each whole word one label, so a word is never split across entities. Label "O" is dropped.
"""

from __future__ import annotations

from tasktool.errors import TaskToolError
from tasktool.tasks.recheck import Rechecks
from tasktool.tasks.text import TextPredictor

AGGREGATIONS = ("none", "simple", "first", "average", "max")
IGNORED = ("O",)


def split_tag(label: str) -> tuple[str, str]:
    """("B"|"I", tag): a label without a B-/I- prefix continues a run of the same label."""
    if label.startswith(("B-", "B_")):
        return "B", label[2:]
    if label.startswith(("I-", "I_")):
        return "I", label[2:]
    return "I", label


def word_units(tokens: list[dict], how: str) -> list[dict]:
    """Merge the tokens of each word into one unit labelled by its first / average / max token."""
    import numpy as np

    groups: list[list[dict]] = []
    for token in tokens:
        if groups and token["word_id"] is not None and token["word_id"] == groups[-1][-1]["word_id"]:
            groups[-1].append(token)
        else:
            groups.append([token])
    units = []
    for group in groups:
        if how == "first":
            probs = group[0]["probs"]
        elif how == "max":
            probs = max(group, key=lambda t: float(np.max(t["probs"])))["probs"]
        else:  # average
            probs = np.mean([t["probs"] for t in group], axis=0)
        best = int(np.argmax(probs))
        units.append(
            {
                "label_id": best,
                "score": float(probs[best]),
                "start": group[0]["start"],
                "end": group[-1]["end"],
            }
        )
    return units


def group_units(units: list[dict], id2label: dict, text: str) -> list[dict]:
    """Consecutive units of one tag become one entity; a B- label always starts a new one."""
    runs: list[list[tuple[str, dict]]] = []
    for unit in units:
        bi, tag = split_tag(id2label[unit["label_id"]])
        if runs and bi != "B" and runs[-1][-1][0] == tag:
            runs[-1].append((tag, unit))
        else:
            runs.append([(tag, unit)])
    entities = []
    for run in runs:
        tag = run[0][0]
        if tag in IGNORED:
            continue
        start, end = run[0][1]["start"], run[-1][1]["end"]
        score = sum(u["score"] for _, u in run) / len(run)
        entities.append(
            {"entity_group": tag, "score": score, "word": text[start:end], "start": start, "end": end}
        )
    return entities


def _top(token: dict) -> tuple[int, float]:
    """(label id, probability) of a token's most likely label; predict() computes them for a whole batch."""
    if "best" in token:
        return token["best"], token["top"]
    best = int(token["probs"].argmax())
    return best, float(token["probs"][best])


def aggregate(tokens: list[dict], id2label: dict, text: str, how: str) -> list[dict]:
    """Entities from per-token probabilities (tokens: probs, index, start, end, word_id)."""
    if how == "none":
        out = []
        for t in tokens:
            best, score = _top(t)
            label = id2label[best]
            if label in IGNORED:
                continue
            out.append(
                {
                    "entity": label,
                    "score": score,
                    "index": t["index"],
                    "word": text[t["start"] : t["end"]],
                    "start": t["start"],
                    "end": t["end"],
                }
            )
        return out
    if how == "simple":
        units = []
        for t in tokens:
            best, score = _top(t)
            units.append({"label_id": best, "score": score, "start": t["start"], "end": t["end"]})
    else:
        units = word_units(tokens, how)
    return group_units(units, id2label, text)


def simple_entities(best: list, top: list, offsets, special, tags: list, text: str) -> list[dict]:
    """aggregate(..., "simple") for one row straight from its per-token label ids and scores.

    The same rule and the same numbers, without a dict per token: on MiniLM-sized models in bfloat16
    the per-token dicts were a tenth of NER inference time. tags[label_id] is split_tag's (B/I, tag).
    """
    entities = []
    tag, run_start, run_end, total, count = None, 0, 0, 0.0, 0  # the open run (tag None: none yet)
    for i, (start, end) in enumerate(offsets):
        if special[i] or start == end:  # [CLS], [SEP], and pieces with no text
            continue
        bi, token_tag = tags[best[i]]
        if tag is not None and bi != "B" and token_tag == tag:
            run_end = end
            total += top[i]
            count += 1
            continue
        if tag is not None and tag not in IGNORED:
            entities.append(_entity(tag, total / count, text, run_start, run_end))
        tag, run_start, run_end, total, count = token_tag, start, end, top[i], 1
    if tag is not None and tag not in IGNORED:
        entities.append(_entity(tag, total / count, text, run_start, run_end))
    return entities


def _entity(tag: str, score: float, text: str, start, end) -> dict:
    start, end = int(start), int(end)
    return {"entity_group": tag, "score": score, "word": text[start:end], "start": start, "end": end}


def word_record(best: list, top: list, item: dict, id2label: dict) -> dict:
    """A pre-tokenized input's record: one tag per given word (its first subword's label; "O" for a word
    with no subword or cut off by max_length) and the entities those tags make, with character offsets
    in the words joined by single spaces."""
    words = item["words"]
    first: list[int | None] = [None] * len(words)
    for pos, word in enumerate(item["word_ids"]):
        if word is not None and first[word] is None:
            first[word] = pos
    text, spans, at = " ".join(words), [], 0
    for w in words:
        spans.append((at, at + len(w)))
        at += len(w) + 1
    units, tags = [], []
    outside = next((i for i, label in id2label.items() if label in IGNORED), None)
    for (start, end), pos in zip(spans, first, strict=True):
        label_id = best[pos] if pos is not None else outside
        tags.append(id2label[label_id] if label_id is not None else "O")
        if label_id is not None:
            units.append(
                {
                    "label_id": label_id,
                    "score": float(top[pos]) if pos is not None else 1.0,
                    "start": start,
                    "end": end,
                }
            )
    return {"tags": tags, "entities": group_units(units, id2label, text)}


def _labelled(batch: list[dict], width: int):
    """(rows, tokens) booleans: the tokens whose labels make each item's record: no special token, no
    piece without text, no padding; of a word list, each word's first piece (word_record's tag)."""
    import numpy as np

    counts = np.zeros((len(batch), width), dtype=bool)
    for row, item in enumerate(batch):
        if "words" in item:
            ids = item["word_ids"]
            marks = [w is not None and (i == 0 or ids[i - 1] != w) for i, w in enumerate(ids)]
        else:
            marks = [not s and a != b for s, (a, b) in zip(item["special"], item["offsets"], strict=True)]
        counts[row, : len(marks)] = marks
    return counts


class TokenClassification(Rechecks, TextPredictor):
    shareable = True  # predict only reads the model and tokenizer: batches may run concurrently
    batch_by_tokens = True  # on a CPU with no batch option: tasktool.tasks.text.CPU_BATCHING

    def __init__(self, spec, opts, **model_kwargs):
        super().__init__(spec, opts, **model_kwargs)
        if not getattr(self.tokenizer, "is_fast", False):
            raise TaskToolError(
                f"token-classification needs a fast tokenizer (for character offsets); '{opts.model}' has none",
                "use a model with a tokenizer.json",
            )
        if opts.aggregation not in AGGREGATIONS:
            raise TaskToolError(
                f"unknown aggregation '{opts.aggregation}'", f"use one of {', '.join(AGGREGATIONS)}"
            )
        config = self.model.config
        self.id2label = {int(k): v for k, v in (config.id2label or {}).items()}

    batch_tokenize = True
    tokenize_kwargs = {"return_offsets_mapping": True, "return_special_tokens_mask": True}
    arrays = "numpy"  # an exported model runs without torch

    def prepare(self, payload):
        if isinstance(payload, (list, tuple)):
            return self.prepare_words(payload)
        return self.from_encoding(self.tokenize(payload, **self.tokenize_kwargs), None, 0, payload)

    def prepare_words(self, words) -> dict:
        """Pre-tokenized input (a CoNLL sentence, a `tokens` list): the words are kept as given and
        each one is labelled by its first subword, as run_ner.py and seqeval scoring do."""
        from tasktool.errors import ItemError

        words = [str(w) for w in words]
        if not words:
            raise ItemError("empty word list", "give at least one word")
        enc = self.tokenizer(words, is_split_into_words=True, truncation=True, max_length=self.max_length)
        return {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            **({"token_type_ids": enc["token_type_ids"]} if "token_type_ids" in enc else {}),
            "word_ids": enc.word_ids(),
            "words": words,
        }

    def from_encoding(self, row, enc, index, text):
        return {
            "input_ids": row["input_ids"],
            "attention_mask": row["attention_mask"],
            **({"token_type_ids": row["token_type_ids"]} if "token_type_ids" in row else {}),
            "offsets": row["offset_mapping"],
            "special": row["special_tokens_mask"],
            "word_ids": row.word_ids() if enc is None else enc.word_ids(index),
            "text": text,
        }

    def predict(self, batch):
        from tasktool.tasks.arrays import softmax, to_numpy

        inputs = self.collate(batch)
        probs = softmax(to_numpy(self.model(**inputs).logits))
        if self.rechecker is not None:
            probs = self.rechecker.scores(probs, inputs, softmax, counts=_labelled(batch, probs.shape[1]))
        bests, tops = probs.argmax(-1).tolist(), probs.max(-1).tolist()
        id2label = self.id2label or {i: f"LABEL_{i}" for i in range(probs.shape[-1])}
        if any("words" in item for item in batch):
            return [
                word_record(best, top, item, id2label)
                if "words" in item
                else self.predict_one(row, best, top, item, id2label)
                for row, best, top, item in zip(probs, bests, tops, batch, strict=True)
            ]
        if self.opts.aggregation == "simple":
            tags = [split_tag(id2label[i]) for i in range(probs.shape[-1])]
            return [
                {"entities": simple_entities(best, top, item["offsets"], item["special"], tags, item["text"])}
                for best, top, item in zip(bests, tops, batch, strict=True)
            ]
        return [
            self.predict_one(row, best, top, item, id2label)
            for row, best, top, item in zip(probs, bests, tops, batch, strict=True)
        ]

    def predict_one(self, row, best, top, item, id2label) -> dict:
        if self.opts.aggregation == "simple":
            tags = [split_tag(id2label[i]) for i in range(len(row[0]))]
            return {
                "entities": simple_entities(best, top, item["offsets"], item["special"], tags, item["text"])
            }
        tokens = []
        for i, (start, end) in enumerate(item["offsets"]):
            if item["special"][i] or start == end:  # [CLS], [SEP], and pieces with no text
                continue
            tokens.append(
                {
                    "probs": row[i],
                    "best": best[i],
                    "top": top[i],
                    "index": i,
                    "start": int(start),
                    "end": int(end),
                    "word_id": item["word_ids"][i],
                }
            )
        return {"entities": aggregate(tokens, id2label, item["text"], self.opts.aggregation)}

    def display(self, record):
        entities = record.get("entities") or []
        if not entities:
            return {"entities": "(none)"}
        parts = [
            f"{e['word']}:{e.get('entity_group') or e.get('entity')} ({e['score']:.2f})" for e in entities[:8]
        ]
        return {"entities": ", ".join(parts) + (" …" if len(entities) > 8 else "")}


Predictor = TokenClassification
