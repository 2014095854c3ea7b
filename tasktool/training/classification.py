"""Fine-tuning and evaluating text classifiers (single sentences or sentence pairs)."""

from __future__ import annotations

import math

from tasktool.errors import TaskToolError
from tasktool.metrics import classification as classification_metrics
from tasktool.training import data as D
from tasktool.training.trainer import TaskTrainer, run_engine


def _label_key(label: str):
    """Numbers sort as numbers (2 before 10), anything else alphabetically after them."""
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


_MISSING = ("", "nan", "null", "none", "n/a")  # what CSV/pandas exports write for an empty cell


def _missing(label) -> bool:
    if label is None or (isinstance(label, float) and math.isnan(label)):
        return True
    return str(label).strip().lower() in _MISSING


def _is_number(label: str) -> bool:
    try:
        float(label)
    except ValueError:
        return False
    return True


class ClassificationTrainer(TaskTrainer):
    loss_units = "rows"
    roles = {
        "text": (
            "--text-column",
            (
                "sentence",
                "text",
                "sentence1",
                "question1",
                "premise",
                "review",
                "content",
                "document",
                "#1 String",
            ),
            True,
        ),
        "text_pair": ("--text-pair-column", ("sentence2", "question2", "hypothesis", "#2 String"), False),
        "label": ("--label-column", ("label", "labels", "class", "category", "target", "Quality"), True),
    }

    def example(self, row, cols, where):
        text = D.field(row, cols["text"])
        if text is None or not str(text).strip():
            raise TaskToolError(
                f"{where}: empty text in column '{cols['text']}'", "remove the row or fill it in"
            )
        label = D.field(row, cols["label"])
        if _missing(label):
            got = "" if label is None or str(label).strip() == "" else f" (got {label!r})"
            raise TaskToolError(
                f"{where}: no label in column '{cols['label']}'{got}",
                "every row needs a label: fill it in or remove the row",
            )
        if isinstance(label, float) and label.is_integer():
            label = int(label)
        ex = {"text": str(text), "label": self._rename(str(label).strip())}
        if cols.get("text_pair"):
            pair = D.field(row, cols["text_pair"])
            ex["text_pair"] = "" if pair is None else str(pair)
        return ex

    def read(self, source):
        examples = super().read(source)
        numbers = [ex for ex in examples if _is_number(ex["label"])]
        if numbers and len(numbers) < len(examples):
            name = next(ex for ex in examples if not _is_number(ex["label"]))
            first, second = sorted((numbers[0], name), key=lambda ex: examples.index(ex))
            raise TaskToolError(
                f"the label column mixes numbers and names: {first['_where']} has {first['label']!r}, "
                f"{second['_where']} has {second['label']!r}",
                "use one kind of label: all names, or all integer ids (name them with label_names=a,b,...)",
            )
        return examples

    def _rename(self, label: str) -> str:
        names = self.recipe.get("label_names")
        if names and label.isdigit() and int(label) < len(names):
            return names[int(label)]
        return label

    def label_set(self, examples):
        labels = sorted({ex["label"] for ex in examples}, key=_label_key)
        names = self.recipe.get("label_names")
        if names:
            labels = [n for n in names if n in labels] + [lb for lb in labels if lb not in names]
        if len(labels) < 2:
            raise TaskToolError(
                f"the training data has a single label ({labels[0] if labels else 'none'})",
                "a classifier needs at least two labels",
            )
        return labels

    def check_labels(self, examples, known, source_name):
        return check_known_labels(examples, known, source_name)

    def features(self, examples, tokenizer, train):
        label2id = {label: i for i, label in enumerate(self.labels or [])}
        max_length = self.recipe.get("max_length") or None
        feats = []
        for ex in examples:
            enc = tokenizer(ex["text"], ex.get("text_pair") or None, truncation=True, max_length=max_length)
            feat = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
            feat["labels"] = label2id[ex["label"]]
            feats.append(feat)
        return feats

    def payload(self, ex: dict):
        if ex.get("text_pair"):
            return {"text": ex["text"], "text_pair": ex["text_pair"]}
        return ex["text"]

    def evaluate(self, model_dir, examples, batch_size=32, device="auto", max_length=None):
        from tasktool import runtime

        config = runtime.load_config(model_dir)
        known = {str(v): int(k) for k, v in (config.id2label or {}).items()}
        examples = check_known_labels(examples, known, "the evaluation data")
        records = run_engine(
            self.spec, model_dir, [self.payload(ex) for ex in examples], batch_size=batch_size, device=device
        )
        preds = [r["label"] for r in records]
        refs = [ex["label"] for ex in examples]
        metrics = classification_metrics(preds, refs)
        metrics["examples"] = len(examples)
        out = [
            {"id": i, "input": r["input"], "label": ex["label"], "prediction": p, "score": r["score"]}
            for i, (r, ex, p) in enumerate(zip(records, examples, preds, strict=True))
        ]
        return metrics, out


def check_known_labels(examples: list[dict], known: dict[str, int], source_name: str) -> list[dict]:
    """Eval labels must be ones the model was trained on; integer labels may name label ids."""
    id2label = {v: k for k, v in known.items()}
    out = []
    for n, ex in enumerate(examples):
        label = ex["label"]
        if label not in known:
            if label.isdigit() and int(label) in id2label and not any(k.isdigit() for k in known):
                ex = {**ex, "label": id2label[int(label)]}
            else:
                raise TaskToolError(
                    f"{ex.get('_where') or f'{source_name}, row {n + 1}'}: label '{label}' was not seen in training",
                    f"the model knows: {', '.join(sorted(known, key=_label_key))}",
                )
        out.append(ex)
    return out
