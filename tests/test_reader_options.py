"""Readers: a UTF-8 byte-order mark is dropped, --delimiter reads pipe-separated files (LJ Speech's
metadata), and --dataset NAME --dataset-config CFG reaches the datasets library."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import FIXTURES, assert_user_error

from tasktool.io.readers import parse_delimiter, read_rows

pytestmark = pytest.mark.slow  # shrunk-model runs


def test_a_byte_order_mark_does_not_stick_to_the_first_header(cli, tmp_path):
    data = tmp_path / "mrpc.tsv"
    rows = "Quality\t#1 String\t#2 String\n1\tHe said so .\tHe said it .\n0\tIt rained .\tThe sun shone .\n"
    data.write_bytes(b"\xef\xbb\xbf" + rows.encode("utf-8"))
    assert list(next(read_rows(data))) == ["Quality", "#1 String", "#2 String"]
    result = cli("evaluate", "classify", "--data", data, "--smoke")
    assert result.code == 0, result.err
    assert json.loads(result.out)["examples"] == 2


@pytest.fixture
def ljspeech(tmp_path):
    """LJ Speech's layout: wavs/ and a pipe-separated metadata.csv."""
    folder = tmp_path / "ljspeech"
    (folder / "wavs").mkdir(parents=True)
    for name in ("LJ001-0002.flac", "LJ001-0008.flac"):
        shutil.copy(FIXTURES / "media_train" / "ljspeech" / name, folder / "wavs" / name)
    (folder / "metadata.csv").write_text(
        "audio_file|text|transcription|speaker_name\n"
        "wavs/LJ001-0002.flac|in being comparatively modern.|in being comparatively modern.|ljspeech-0\n"
        "wavs/LJ001-0008.flac|has never been surpassed.|has never been surpassed.|ljspeech-0\n"
    )
    return folder


def test_delimiter_reads_pipe_separated_metadata(cli, ljspeech):
    result = cli("evaluate", "asr", "--data", ljspeech, "--delimiter", "|", "--smoke")
    assert result.code == 0, result.err
    assert json.loads(result.out)["examples"] == 2
    manifest = cli("infer", "asr", "--file", ljspeech / "metadata.csv", "--delimiter", "pipe", "--smoke")
    assert manifest.code == 0, manifest.err
    assert [r["input"].rsplit("/", 1)[-1] for r in manifest.records()] == [
        "LJ001-0002.flac",
        "LJ001-0008.flac",
    ]


def test_a_pipe_separated_csv_is_recognised_without_the_flag(cli, ljspeech):
    rows = list(read_rows(ljspeech / "metadata.csv"))
    assert rows[0]["audio_file"] == "wavs/LJ001-0002.flac" and rows[1]["speaker_name"] == "ljspeech-0"


def test_delimiter_for_infer_text_files(cli, tmp_path):
    from tasktool.tasks.registry import resolve

    model = resolve("sentiment").build_tiny(tmp_path / "m", labels=["NEG", "POS"])
    data = tmp_path / "reviews.csv"
    data.write_text("id;text\n1;good, very good\n2;bad\n")
    result = cli(
        "infer", "sentiment", "--file", data, "--delimiter", ";", "--column", "text", "--model", model
    )
    assert result.code == 0, result.err
    assert [r["input"] for r in result.records()] == ["good, very good", "bad"]
    assert [r["id"] for r in result.records()] == ["1", "2"]


def test_a_bad_delimiter_is_a_usage_error(cli, tmp_path):
    assert parse_delimiter("tab") == "\t" and parse_delimiter("\\t") == "\t" and parse_delimiter("|") == "|"
    result = cli("infer", "sentiment", "--file", tmp_path / "x.csv", "--delimiter", "||")
    assert_user_error(result, "--delimiter", code=2)


def test_dataset_config_reaches_the_datasets_library(cli, monkeypatch):
    import datasets

    from tasktool import hub

    calls = []
    rows = [{"sentence1": f"a {i}", "sentence2": f"b {i}", "label": i % 2} for i in range(6)]

    def fake_load_dataset(name, config=None, split=None, streaming=False, **kw):
        calls.append((name, config, split))
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(hub, "offline", lambda: False)
    monkeypatch.setattr(hub, "ensure_reachable", lambda: True)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    evaluated = cli(
        "evaluate",
        "classify",
        "--dataset",
        "glue",
        "--dataset-config",
        "mrpc",
        "--split",
        "validation",
        "--smoke",
    )
    assert evaluated.code == 0, evaluated.err
    trained = cli(
        "finetune",
        "classify",
        "--dataset",
        "glue",
        "--dataset-config",
        "mrpc",
        "--eval-split",
        "validation",
        "--smoke",
        "-q",
    )
    assert trained.code == 0, trained.err
    inferred = cli(
        "infer",
        "classify",
        "--dataset",
        "glue",
        "--dataset-config",
        "sst2",
        "--column",
        "sentence1",
        "--smoke",
    )
    assert inferred.code == 0, inferred.err
    assert calls == [
        ("glue", "mrpc", "validation"),
        ("glue", "mrpc", "train"),
        ("glue", "mrpc", "validation"),
        ("glue", "sst2", "test"),
    ]
