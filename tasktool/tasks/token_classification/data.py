"""Labelled sentences for token-classification: a token list and a tag list per row, or CoNLL files."""

from __future__ import annotations

from tasktool.errors import TaskToolError
from tasktool.io.columns import field
from tasktool.io.labelled import Reader as BaseReader


def tag_key(tag: str):
    """O first, then by entity type, B- before I-."""
    if tag == "O":
        return (0, "", "")
    if len(tag) > 2 and tag[1] in "-_":
        return (1, tag[2:], tag[0])
    return (1, tag, "")


class Reader(BaseReader):
    roles = {
        "tokens": ("--tokens-column", ("tokens", "words", "token"), True),
        "tags": ("--tags-column", ("ner_tags", "tags", "ner", "labels", "label", "pos_tags"), True),
    }
    conll = True

    def example(self, row, cols, where):
        tokens, tags = field(row, cols["tokens"]), field(row, cols["tags"])
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


def check_known_tags(
    examples: list[dict], known: dict[str, int], source_name: str, quiet: bool = False
) -> list[dict]:
    """Tags the model was not trained on stay in the references and count as errors (seqeval: an entity
    of an unknown type is missed), with one warning listing them."""
    unseen: dict[str, str] = {}
    for n, ex in enumerate(examples):
        for tag in ex["ner_tags"]:
            if tag not in known and tag not in unseen:
                unseen[tag] = ex.get("_where") or f"{source_name}, row {n + 1}"
    if unseen and not quiet:
        from tasktool.tasks.classes import warn_unseen

        warn_unseen(unseen, known, "tag", tag_key)
    return examples
