"""Transcribed clips for speech recognition: a metadata file or manifest with a path and a transcription
column, or a dataset."""

from __future__ import annotations

from pathlib import Path

from tasktool.io.labelled import Reader as BaseReader
from tasktool.io.media import read_examples

TRANSCRIPTION_COLUMNS = (
    "transcription",
    "text",
    "sentence",
    "transcript",
    "normalized_text",
    "raw_transcription",
)


class Reader(BaseReader):
    def read(self, source):
        return read_examples(
            source,
            "audio",
            "text",
            self.columns.get("path"),
            self.columns.get("transcription") or self.columns.get("text"),
            allow_outside=bool(self.recipe.get("allow_absolute_paths")),
        )

    def eval_row(self, example: dict) -> dict:
        path = example["path"]
        if not path.startswith(("http://", "https://")):
            path = str(Path(path).resolve())
        return {"path": path, "transcription": example["text"]}
