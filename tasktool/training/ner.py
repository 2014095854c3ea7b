"""Fine-tuning and evaluating token classifiers (NER, POS): one tag per word.

Training aligns word tags to subwords (the first subword of a word carries its tag, the rest are
ignored unless label_all_tokens). Evaluation runs the same TokenClassification predictor as
`tasktool infer ner --aggregation first` on the words joined by spaces, and turns its entities
back into one tag per word for seqeval.
"""

from __future__ import annotations

from tasktool.errors import TaskToolError
from tasktool.metrics import seqeval_scores
from tasktool.training import data as D
from tasktool.training.trainer import TaskTrainer, run_engine

AGGREGATION = "first"


def _tag_key(tag: str):
    """O first, then by entity type, B- before I-."""
    if tag == "O":
        return (0, "", "")
    if len(tag) > 2 and tag[1] in "-_":
        return (1, tag[2:], tag[0])
    return (1, tag, "")


class NERTrainer(TaskTrainer):
    loss_units = "tokens"
    roles = {
        "tokens": ("--tokens-column", ("tokens", "words", "token"), True),
        "tags": ("--tags-column", ("ner_tags", "tags", "ner", "labels", "label", "pos_tags"), True),
    }
    conll = True

    def example(self, row, cols, where):
        tokens, tags = D.field(row, cols["tokens"]), D.field(row, cols["tags"])
        if isinstance(tokens, str):
            tokens = tokens.split()
        if isinstance(tags, str):
            tags = tags.split()
        if not isinstance(tokens, list) or not isinstance(tags, list):
            raise TaskToolError(
                f"{where}: '{cols['tokens']}' and '{cols['tags']}' must be lists",
                "give one token list and one tag list per row",
            )
        if not tokens:
            raise TaskToolError(f"{where}: no tokens", "remove empty sentences")
        if len(tokens) != len(tags):
            raise TaskToolError(
                f"{where}: {len(tokens)} tokens but {len(tags)} tags", "give exactly one tag per token"
            )
        return {"tokens": [str(t) for t in tokens], "ner_tags": [str(t) for t in tags]}

    def label_set(self, examples):
        return sorted({tag for ex in examples for tag in ex["ner_tags"]}, key=_tag_key)

    def check_labels(self, examples, known, source_name):
        return check_known_tags(examples, known, source_name)

    def collator(self, tokenizer):
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer)

    def features(self, examples, tokenizer, train):
        if not getattr(tokenizer, "is_fast", False):
            raise TaskToolError(
                "NER fine-tuning needs a fast tokenizer (word ids)", "use a model with tokenizer.json"
            )
        label2id = {label: i for i, label in enumerate(self.labels or [])}
        inside = {i: label2id.get("I-" + lb[2:], i) for lb, i in label2id.items() if lb.startswith("B-")}
        all_tokens = bool(self.recipe.get("label_all_tokens"))
        max_length = self.recipe.get("max_length") or None
        feats = []
        for ex in examples:
            enc = tokenizer(ex["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
            labels, previous = [], None
            for word in enc.word_ids():
                if word is None:
                    labels.append(-100)
                elif word != previous:
                    labels.append(label2id[ex["ner_tags"][word]])
                else:
                    tag = label2id[ex["ner_tags"][word]]
                    labels.append(inside.get(tag, tag) if all_tokens else -100)
                previous = word
            feat = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
            feat["labels"] = labels
            feats.append(feat)
        return feats

    def evaluate(self, model_dir, examples, batch_size=32, device="auto", max_length=None):
        from tasktool import runtime

        config = runtime.load_config(model_dir)
        known = {str(v): int(k) for k, v in (config.id2label or {}).items()}
        examples = check_known_tags(examples, known, "the evaluation data")
        texts, starts = [], []
        for ex in examples:
            text, offs = join_words(ex["tokens"])
            texts.append(text)
            starts.append(offs)
        records = run_engine(
            self.spec, model_dir, texts, batch_size=batch_size, device=device, aggregation=AGGREGATION
        )
        prefixed = any(tag[:2] in ("B-", "I-", "B_", "I_") for tag in known)
        preds = [
            entities_to_tags(r.get("entities") or [], offs, prefixed)
            for r, offs in zip(records, starts, strict=True)
        ]
        refs = [ex["ner_tags"] for ex in examples]
        metrics = seqeval_scores(preds, refs)
        metrics["examples"] = len(examples)
        out = [
            {
                "id": i,
                "input": r["input"],
                "tags": ex["ner_tags"],
                "prediction": p,
                "entities": r.get("entities"),
            }
            for i, (r, ex, p) in enumerate(zip(records, examples, preds, strict=True))
        ]
        return metrics, out


def join_words(words: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The words as one space-separated text, and each word's (start, end) in it."""
    spans, pos = [], 0
    for w in words:
        spans.append((pos, pos + len(w)))
        pos += len(w) + 1
    return " ".join(words), spans


def entities_to_tags(entities: list[dict], spans: list[tuple[int, int]], prefixed: bool = True) -> list[str]:
    """A word takes the entity covering its first character: B- where the entity starts, else I-
    (plain tags when the label set has no B-/I- prefixes)."""
    tags = []
    for start, _end in spans:
        tag = "O"
        for ent in entities:
            if ent["start"] <= start < ent["end"]:
                group = ent.get("entity_group") or ent.get("entity", "")
                tag = (("B-" if ent["start"] >= start else "I-") + group) if prefixed else group
                break
        tags.append(tag)
    return tags


def check_known_tags(examples: list[dict], known: dict[str, int], source_name: str) -> list[dict]:
    for n, ex in enumerate(examples):
        for tag in ex["ner_tags"]:
            if tag not in known:
                where = ex.get("_where") or f"{source_name}, row {n + 1}"
                raise TaskToolError(
                    f"{where}: tag '{tag}' was not seen in training",
                    f"the model knows: {', '.join(sorted(known, key=_tag_key))}",
                )
    return examples
