"""Labelled sentences (or sentence pairs) for text-classification: a text column and a label column."""

from __future__ import annotations

import math

from tasktool.errors import TaskToolError
from tasktool.io.columns import as_text, field
from tasktool.io.labelled import Reader as BaseReader

_MISSING = ("", "nan", "null", "none", "n/a")  # what CSV/pandas exports write for an empty cell
TEXT_COLUMNS = (
    "sentence",
    "text",
    "sentence1",
    "question1",
    "premise",
    "review",
    "content",
    "document",
    "#1 String",
)
PAIR_COLUMNS = ("sentence2", "question2", "hypothesis", "#2 String")
LABEL_COLUMNS = ("label", "labels", "class", "category", "target", "Quality")


def _missing(label) -> bool:
    if label is None or (isinstance(label, float) and math.isnan(label)):
        return True
    return str(label).strip().lower() in _MISSING


def is_number(label: str) -> bool:
    try:
        float(label)
    except ValueError:
        return False
    return True


class Reader(BaseReader):
    roles = {
        "text": ("--text-column", TEXT_COLUMNS, True),
        "text_pair": ("--text-pair-column", PAIR_COLUMNS, False),
        "label": ("--label-column", LABEL_COLUMNS, True),
    }

    def example(self, row, cols, where):
        text = field(row, cols["text"])
        if text is None or not str(text).strip():
            raise TaskToolError(
                f"{where}: empty text in column '{cols['text']}'", "remove the row or fill it in"
            )
        label = field(row, cols["label"])
        if _missing(label):
            got = "" if label is None or str(label).strip() == "" else f" (got {label!r})"
            raise TaskToolError(
                f"{where}: no label in column '{cols['label']}'{got}",
                "every row needs a label: fill it in or remove the row",
            )
        if isinstance(label, float) and label.is_integer():
            label = int(label)
        ex = {"text": as_text(text), "label": self.rename(str(label).strip())}
        if cols.get("text_pair"):
            ex["text_pair"] = as_text(field(row, cols["text_pair"]))
        return ex

    def read(self, source):
        examples = super().read(source)
        numbers = [ex for ex in examples if is_number(ex["label"])]
        if numbers and len(numbers) < len(examples):
            name = next(ex for ex in examples if not is_number(ex["label"]))
            first, second = sorted((numbers[0], name), key=lambda ex: examples.index(ex))
            raise TaskToolError(
                f"the label column mixes numbers and names: {first['_where']} has {first['label']!r}, "
                f"{second['_where']} has {second['label']!r}",
                "use one kind of label: all names, or all integer ids (name them with label_names=a,b,...)",
            )
        return examples

    def rename(self, label: str) -> str:
        """Integer labels become the recipe's label_names, when it gives them."""
        names = self.recipe.get("label_names")
        if names and label.isdigit() and int(label) < len(names):
            return names[int(label)]
        return label
