"""Training text for fill-mask: documents from .txt files or a text column."""

from tasktool.tasks.language_model import TextReader as Reader

__all__ = ["Reader"]
