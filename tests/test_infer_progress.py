"""infer's progress: a total when it is known (arguments, files, local datasets), the rate and the time
left; a last line with the count and where the records went."""

from __future__ import annotations

import sys

import pytest

from tasktool.io.inputs import InputSpec, count_inputs
from tasktool.io.kinds import AUDIO, PAIR, TEXT


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tasktool.tasks.registry import resolve

    return resolve("text-classification").build_tiny(tmp_path_factory.mktemp("cls"), labels=["NEG", "POS"])


def test_the_total_is_known_for_arguments_files_and_media_folders(tmp_path):
    txt = tmp_path / "in.txt"
    txt.write_text("a\n\nb\nc\n")
    csv_file = tmp_path / "in.csv"
    csv_file.write_text('text\n"one, with a comma"\n"two\nlines"\nthree\n')
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"text": "a"}\n{"text": "b"}\n')
    assert count_inputs(TEXT, InputSpec(texts=("x", "y"))) == 2
    assert count_inputs(TEXT, InputSpec(file=str(txt))) == 3  # blank lines are not inputs
    assert count_inputs(TEXT, InputSpec(file=str(csv_file))) == 3  # rows, not lines
    assert count_inputs(TEXT, InputSpec(file=str(jsonl))) == 2
    assert count_inputs(PAIR, InputSpec(question="q", context="c")) == 1
    from conftest import FIXTURES

    assert count_inputs(AUDIO, InputSpec(texts=(str(FIXTURES / "audio"),))) == 6
    assert count_inputs(TEXT, InputSpec(texts=("-",))) is None  # stdin: unknown


@pytest.mark.slow  # imports datasets
def test_the_total_of_a_saved_dataset_is_its_length(tmp_path):
    import datasets

    datasets.Dataset.from_list([{"text": f"t{i}"} for i in range(7)]).save_to_disk(tmp_path / "ds")
    assert count_inputs(TEXT, InputSpec(dataset=str(tmp_path / "ds"), split="train")) == 7


def test_progress_on_a_terminal_shows_the_total_rate_and_time_left(monkeypatch):
    from rich.progress import TimeRemainingColumn

    from tasktool import inference

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    known = inference._progress(False, total=300)
    try:
        known.advance(30)
        assert known.task.total == 300 and known.task.completed == 30
        assert any(isinstance(c, TimeRemainingColumn) for c in known.bar.columns)
        assert any(type(c).__name__ == "RateColumn" for c in known.bar.columns)
    finally:
        known.stop()
    unknown = inference._progress(False, total=None)
    try:
        assert unknown.task.total is None
        assert not any(isinstance(c, TimeRemainingColumn) for c in unknown.bar.columns)
    finally:
        unknown.stop()
    assert inference._progress(True, total=300) is None  # -q


def test_a_last_line_says_how_many_records_went_where(cli, model, tmp_path):
    out = tmp_path / "out.jsonl"
    result = cli("infer", "sentiment", "a", "b", "c", "--model", model, "-o", out)
    assert result.code == 0, result.err
    assert result.err.strip().splitlines()[-1] == f"3 records written to {out}"
    piped = cli("infer", "sentiment", "a", "--model", model)
    assert piped.err.strip().splitlines()[-1] == "1 record on stdout"
