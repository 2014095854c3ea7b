"""Every text task reads its inputs the same way: literal arguments, JSON Lines, CSV (the first text
column found), and stdin give the same records, and --output writes exactly what stdout shows."""

from __future__ import annotations

import csv
import json

import pytest

TEXTS = ["Hello world", "john went to london on monday with mary", "a", "the city of paris is big"]
MASKED = ["the [MASK] film was good", "paris is a [MASK] city", "[MASK]", "john went to the [MASK]"]
# task -> (tiny model arguments, inputs, extra infer arguments)
CASES = {
    "text-classification": ({"labels": ["NEG", "POS"]}, TEXTS, ()),
    "token-classification": ({"labels": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]}, TEXTS, ()),
    "fill-mask": ({}, MASKED, ()),
    "text-generation": ({}, TEXTS, ("--max-new-tokens", "6")),
    "summarization": ({"init_std": 0.2}, TEXTS, ("--max-new-tokens", "6")),
    "translation": ({"init_std": 0.2}, TEXTS, ("--max-new-tokens", "6")),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tiny):
    kwargs, texts, extra = CASES[request.param]
    return request.param, tiny(request.param, **kwargs), texts, extra


def _run(cli, case, *args, input=None):
    task, model, _, extra = case
    result = cli("infer", task, *args, "--model", model, *extra, input=input)
    assert result.code == 0, result.err
    return result


def test_literal_jsonl_csv_and_stdin_inputs_give_the_same_records(cli, case, tmp_path):
    _, _, texts, _ = case
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "n": i}) + "\n" for i, t in enumerate(texts)))
    table = tmp_path / "in.csv"
    with open(table, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sentence", "other"])
        writer.writerows([[t, 1] for t in texts])
    runs = [
        _run(cli, case, *texts).records(),
        _run(cli, case, "--file", jsonl).records(),
        _run(cli, case, "--file", table).records(),
        _run(cli, case, "-", input="\n".join(texts) + "\n").records(),
    ]
    assert [r["id"] for r in runs[0]] == list(range(len(texts)))
    assert [r["input"] for r in runs[0]] == texts
    assert not any("error" in r for r in runs[0])
    assert runs[0] == runs[1] == runs[2] == runs[3]


def test_output_file_holds_exactly_the_records_stdout_shows(cli, case, tmp_path):
    _, _, texts, _ = case
    out = tmp_path / "out.jsonl"
    shown = _run(cli, case, *texts).records()
    written = _run(cli, case, *texts, "--output", out)
    assert written.out == ""  # with --output, nothing on stdout
    assert [json.loads(line) for line in out.read_text().splitlines()] == shown
    assert not (tmp_path / "out.jsonl.partial").exists()
