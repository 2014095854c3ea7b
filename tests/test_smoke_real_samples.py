"""--smoke works on any data the full run accepts: every task on every bundled sample (tests/fixtures/,
tasktool/data/), with the recipes' real lengths (256-512 tokens) and no network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FIXTURES

pytestmark = pytest.mark.slow  # a few fine-tuning steps each

TEXT = FIXTURES / "text"
MEDIA = FIXTURES / "media_train"
IMDB = Path(__file__).resolve().parent.parent / "tasktool" / "data" / "imdb_sample.csv"

# (task, data arguments): every bundled sample, with the task that reads it
FINETUNE = [
    ("text-classification", ["--data", IMDB]),
    ("text-classification", ["--data", TEXT / "mrpc_train.csv", "--eval-data", TEXT / "mrpc_dev.csv"]),
    ("token-classification", ["--data", TEXT / "conll_sample.json"]),
    ("token-classification", ["--data", TEXT / "germeval_train.txt"]),
    ("question-answering", ["--data", TEXT / "squad_sample.json"]),
    ("summarization", ["--data", TEXT / "xsum_sample.json"]),
    ("translation", ["--data", TEXT / "wmt16_sample.json"]),
    ("text-generation", ["--data", TEXT / "sample_text.txt"]),
    ("fill-mask", ["--data", TEXT / "sample_text.txt"]),
    ("automatic-speech-recognition", ["--data", MEDIA / "ljspeech"]),
    ("audio-classification", ["--data", MEDIA / "fsdd"]),
    ("image-classification", ["--data", MEDIA / "cifar10"]),
]
INFER = [
    ("text-classification", ["--file", IMDB]),
    ("text-classification", ["--file", TEXT / "mrpc_dev.csv", "--column", "sentence1"]),
    ("token-classification", ["--file", TEXT / "sample_text.txt"]),
    ("question-answering", ["--file", TEXT / "squad_sample.json"]),
    ("summarization", ["--file", TEXT / "xsum_sample.json", "--column", "document"]),
    ("translation", ["--file", TEXT / "wmt16_sample.json", "--column", "translation.en"]),
    ("text-generation", ["--file", TEXT / "sample_text.txt", "--max-new-tokens", "4"]),
    ("automatic-speech-recognition", [FIXTURES / "audio"]),
    ("audio-classification", [FIXTURES / "audio"]),
    ("image-classification", [FIXTURES / "images"]),
    ("object-detection", [FIXTURES / "images"]),
    ("image-segmentation", [FIXTURES / "images"]),
    ("depth-estimation", [FIXTURES / "images"]),
]


def _name(case) -> str:
    task, args = case
    return f"{task}:{Path(str(args[1] if str(args[0]).startswith('-') else args[0])).name}"


@pytest.mark.parametrize("case", FINETUNE, ids=_name)
def test_finetune_smoke_passes_on_every_bundled_sample(cli, case):
    task, args = case
    result = cli("finetune", task, *args, "--smoke", "--format", "json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["smoke"] is True and summary["train"]["global_step"] == 3
    assert "infer" not in result.err  # never suggests using the random model


@pytest.mark.parametrize("case", FINETUNE, ids=_name)
def test_evaluate_smoke_passes_on_every_bundled_sample(cli, case):
    task, args = case
    data = args[args.index("--eval-data") + 1] if "--eval-data" in args else args[1]
    result = cli("evaluate", task, "--data", data, "--smoke")
    assert result.code == 0, result.err
    assert json.loads(result.out)["examples"] >= 1  # a pipe: one JSON object


@pytest.mark.parametrize("case", INFER, ids=_name)
def test_infer_smoke_passes_on_every_bundled_sample(cli, case):
    task, args = case
    result = cli("infer", task, *args, "--smoke")
    assert result.code == 0, result.err
    records = result.records()
    assert 1 <= len(records) <= 8 and not any("error" in r for r in records)


def _run_in(tmpdir: Path, *args: str):
    import os
    import subprocess
    import sys

    tmpdir.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    return subprocess.run(
        [sys.executable, "-m", "tasktool", *args], capture_output=True, text=True, timeout=600, env=env
    )


def test_smoke_runs_clean_up_after_themselves_unless_keep(tmp_path):
    temp = tmp_path / "tmp"
    train = ("finetune", "classify", "--data", str(TEXT / "mrpc_train.csv"), "--smoke")
    out = _run_in(temp, *train)
    assert out.returncode == 0, out.stderr
    assert not list(temp.glob("tasktool-smoke-*")), list(temp.iterdir())
    assert "smoke run passed" in out.stderr
    assert "tasktool infer" not in out.stderr and "try:" not in out.stderr  # the model is random
    kept = _run_in(temp, *train, "--keep")
    assert kept.returncode == 0, kept.stderr
    (folder,) = temp.glob("tasktool-smoke-*")
    assert str(folder) in kept.stderr and (folder / "output" / "config.json").exists()
    assert "tasktool infer" not in kept.stderr
