"""Labelled questions for question-answering: question, context and answers (SQuAD JSON or flat rows)."""

from __future__ import annotations

from tasktool.errors import TaskToolError
from tasktool.io.columns import as_text, field
from tasktool.io.labelled import Reader as BaseReader


class Reader(BaseReader):
    roles = {
        "question": ("--question-column", ("question", "query", "q"), True),
        "context": ("--context-column", ("context", "passage", "paragraph", "text", "document"), True),
        "answers": ("--answers-column", ("answers", "answer", "answer_text"), True),
    }

    def example(self, row, cols, where):
        question = as_text(field(row, cols["question"])).strip()
        context = as_text(field(row, cols["context"]))
        if not question:
            raise TaskToolError(f"{where}: empty question", "every row needs a question")
        if not context.strip():
            raise TaskToolError(f"{where}: empty context", "every row needs a context")
        texts, starts = _answers(field(row, cols["answers"]), row, context, where)
        for text, start in zip(texts, starts, strict=True):
            if context[start : start + len(text)] != text:
                found = context[start : start + len(text)]
                raise TaskToolError(
                    f"{where}: answer {text!r} is not at answer_start {start} of the context "
                    f"(the context has {found!r} there)",
                    "fix answer_start (a character offset into the context) or the answer text",
                )
        rid = row.get("id")
        return {
            "id": str(rid) if rid is not None else where,
            "question": question,
            "context": context,
            "answers": {"text": texts, "answer_start": starts},
        }


def _answers(value, row: dict, context: str, where: str) -> tuple[list[str], list[int]]:
    """SQuAD dict {text: [...], answer_start: [...]}, a list of such dicts, or a plain answer string."""
    if isinstance(value, dict):
        texts, starts = value.get("text", []), value.get("answer_start", [])
        if isinstance(texts, str):
            texts, starts = [texts], [starts]
    elif isinstance(value, list):
        texts = [a.get("text", "") for a in value if isinstance(a, dict)]
        starts = [a.get("answer_start") for a in value if isinstance(a, dict)]
    elif isinstance(value, str):
        texts = [value] if value else []
        given = row.get("answer_start")
        starts = [int(given) if given not in (None, "") else context.find(value)] if value else []
        if value and starts[0] < 0:
            raise TaskToolError(
                f"{where}: answer {value!r} does not occur in the context",
                "the answer must be a span of the context",
            )
    else:
        raise TaskToolError(
            f"{where}: cannot read the answers ({type(value).__name__})",
            "give answers as {text: [...], answer_start: [...]}",
        )
    if len(texts) != len(starts):
        raise TaskToolError(
            f"{where}: {len(texts)} answer texts but {len(starts)} answer_start values",
            "give one answer_start per answer text",
        )
    try:
        starts = [int(s) for s in starts]
    except (TypeError, ValueError):
        raise TaskToolError(
            f"{where}: answer_start must be integers, got {starts}", "character offsets"
        ) from None
    return [str(t) for t in texts], starts
