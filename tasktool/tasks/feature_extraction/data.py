"""Scored sentence pairs for feature-extraction (STS-B style): two text columns and a similarity score."""

from __future__ import annotations

from tasktool.errors import TaskToolError
from tasktool.io.columns import field
from tasktool.io.labelled import Reader as BaseReader


class Reader(BaseReader):
    roles = {
        "text": ("--text-column", ("sentence1", "text", "sentence", "text1", "premise"), True),
        "text_pair": ("--text-pair-column", ("sentence2", "text_pair", "text2", "hypothesis"), True),
        "label": ("--label-column", ("score", "similarity", "label", "relatedness_score"), True),
    }

    def example(self, row, cols, where):
        texts = [field(row, cols[role]) for role in ("text", "text_pair")]
        if any(t is None or not str(t).strip() for t in texts):
            raise TaskToolError(f"{where}: an empty sentence", "every row needs two sentences")
        raw = field(row, cols["label"])
        try:
            score = float(raw)
        except (TypeError, ValueError):
            raise TaskToolError(
                f"{where}: the score in column '{cols['label']}' is not a number (got {raw!r})",
                "give a similarity score per pair, e.g. 0-5 as in STS-B",
            ) from None
        if score != score:  # NaN
            raise TaskToolError(
                f"{where}: no score in column '{cols['label']}'", "fill it in or remove the row"
            )
        return {"text": str(texts[0]), "text_pair": str(texts[1]), "score": score}
