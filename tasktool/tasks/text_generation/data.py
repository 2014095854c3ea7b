"""Training text for text-generation: documents from .txt files or a text column, or chat conversations
(a `messages` column of {role, content} lists, as OpenAI / Hugging Face chat data has)."""

from __future__ import annotations

from tasktool.errors import TaskToolError
from tasktool.io.columns import field
from tasktool.tasks.language_model import TextReader
from tasktool.tasks.text_generation.chat import CHAT_COLUMNS, check_messages, is_chat


class Reader(TextReader):
    """Plain documents (the causal-LM path), or conversations when the data has a `messages` column."""

    def resolve_columns(self, first: dict) -> dict:
        if not self.columns.get("text"):
            for name in CHAT_COLUMNS:
                if is_chat(first.get(name)):
                    return {"messages": name}
        return super().resolve_columns(first)

    def example(self, row, cols, where):
        if "messages" not in cols:
            return super().example(row, cols, where)
        value = field(row, cols["messages"])
        if not is_chat(value):
            raise TaskToolError(
                f"{where}: column '{cols['messages']}' holds no conversation",
                "give a list of {role, content} messages in every row",
            )
        return {"messages": check_messages(value, where, TaskToolError, need_assistant=True)}


def is_chat_data(examples: list[dict]) -> bool:
    return bool(examples) and "messages" in examples[0]
