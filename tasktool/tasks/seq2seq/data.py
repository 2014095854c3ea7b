"""Labelled pairs for summarization (document -> summary) and translation (translation.{src,tgt} or
source/target columns)."""

from __future__ import annotations

from tasktool.errors import TaskToolError
from tasktool.io.columns import as_text, field, pick
from tasktool.io.labelled import Reader as BaseReader

SUMMARY_SOURCES = ("document", "text", "article", "source", "input", "dialogue", "content")
SUMMARY_TARGETS = ("summary", "highlights", "target", "abstract", "output")
TRANSLATION_SOURCES = ("source", "src", "text", "sentence")
TRANSLATION_TARGETS = ("target", "tgt")


def is_translation(spec) -> bool:
    return spec.name == "translation"


def languages(recipe: dict) -> tuple[str, str]:
    src, tgt = recipe.get("source_lang"), recipe.get("target_lang")
    if not src or not tgt:
        raise TaskToolError("translation needs the language pair", "set source_lang=en target_lang=fr")
    return src, tgt


class Reader(BaseReader):
    roles = {
        "source": ("--source-column", SUMMARY_SOURCES, True),
        "target": ("--target-column", SUMMARY_TARGETS, True),
    }

    def resolve_columns(self, first: dict) -> dict[str, str | None]:
        want_src, want_tgt = self.columns.get("source"), self.columns.get("target")
        src_defaults, tgt_defaults = SUMMARY_SOURCES, SUMMARY_TARGETS
        if is_translation(self.spec):
            src_lang, tgt_lang = languages(self.recipe)
            src_defaults, tgt_defaults = (*TRANSLATION_SOURCES, src_lang), (*TRANSLATION_TARGETS, tgt_lang)
            pair = first.get("translation")
            if isinstance(pair, dict) and not (want_src and want_tgt):
                missing = [code for code in (src_lang, tgt_lang) if code not in pair]
                if missing:
                    keys = list(pair)
                    example = (
                        f"source_lang={keys[0]} target_lang={keys[1]}" if len(keys) == 2 else "source_lang=.."
                    )
                    raise TaskToolError(
                        f"the 'translation' column holds the languages {', '.join(keys) or 'none'}, "
                        f"not {' and '.join(missing)} (the recipe translates {src_lang} -> {tgt_lang})",
                        f"set the pair, e.g. {example}",
                    )
                want_src = want_src or f"translation.{src_lang}"
                want_tgt = want_tgt or f"translation.{tgt_lang}"
        return {
            "source": pick(first, want_src, src_defaults, "source", "--source-column"),
            "target": pick(first, want_tgt, tgt_defaults, "target", "--target-column"),
        }

    def example(self, row, cols, where):
        out = {}
        for role in ("source", "target"):
            value = field(row, cols[role])
            if value is None or not str(value).strip():
                raise TaskToolError(
                    f"{where}: empty {role} text in column '{cols[role]}'", "remove the row or fill it in"
                )
            out[role] = as_text(value)
        return out

    def eval_row(self, example):
        """Written with the task's usual column names, so `tasktool evaluate` reads it back by default."""
        if is_translation(self.spec):
            src, tgt = languages(self.recipe)
            return {"translation": {src: example["source"], tgt: example["target"]}}
        return {"document": example["source"], "summary": example["target"]}
