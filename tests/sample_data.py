"""The built-in samples the tests share, from the task folders that own them."""

from tasktool.tasks.audio_classification.sample import write_classes as write_audio_classes
from tasktool.tasks.image_classification.sample import write_classes as write_image_classes
from tasktool.tasks.question_answering.sample import rows as qa_rows
from tasktool.tasks.seq2seq.sample import rows as seq2seq_rows
from tasktool.tasks.speech_recognition.sample import write_clips as write_asr_sample
from tasktool.tasks.text_classification.sample import rows as classification_rows
from tasktool.tasks.token_classification.sample import rows as ner_rows
from tasktool.tiny.samples import text_lines, tone, write_csv, write_jsonl, write_scene

__all__ = [
    "classification_rows",
    "ner_rows",
    "qa_rows",
    "seq2seq_rows",
    "text_lines",
    "tone",
    "write_asr_sample",
    "write_audio_classes",
    "write_csv",
    "write_image_classes",
    "write_jsonl",
    "write_scene",
]
