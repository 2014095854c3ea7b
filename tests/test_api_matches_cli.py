"""The Python API and the CLI are one code path: the same inputs give identical records and metrics."""

from __future__ import annotations

import json

import pytest
import sample_data as samples

import tasktool


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tasktool.tasks.registry import resolve

    root = tmp_path_factory.mktemp("api")
    return {
        "text-classification": resolve("text-classification").build_tiny(
            root / "cls", labels=["negative", "positive"]
        ),
        "token-classification": resolve("token-classification").build_tiny(
            root / "ner", labels=["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
        ),
        "question-answering": resolve("question-answering").build_tiny(root / "qa"),
    }


def test_infer_records_are_identical(cli, models, tmp_path):
    texts = ["What a great film", "Dull and too long", "John lives in Paris"]
    for task in ("text-classification", "token-classification"):
        model = models[task]
        shown = cli("infer", task, *texts, "--model", model, "--format", "jsonl")
        assert shown.code == 0, shown.err
        assert tasktool.infer(task, texts, model=str(model)) == shown.records()


def test_infer_records_from_a_file_are_identical(cli, models, tmp_path):
    data = samples.write_jsonl(tmp_path / "qa.jsonl", samples.qa_rows(6))
    model = str(models["question-answering"])
    shown = cli("infer", "qa", "--file", data, "--model", model)
    assert shown.code == 0, shown.err
    assert tasktool.infer("qa", file=str(data), model=model) == shown.records()


def test_evaluate_metrics_and_predictions_are_identical(cli, models, tmp_path):
    cases = {
        "text-classification": samples.write_csv(tmp_path / "cls.csv", samples.classification_rows(12)),
        "token-classification": samples.write_jsonl(tmp_path / "ner.jsonl", samples.ner_rows(12)),
        "question-answering": samples.write_jsonl(tmp_path / "qa.jsonl", samples.qa_rows(8)),
    }
    for task, data in cases.items():
        model = str(models[task])
        preds = tmp_path / f"{task}.jsonl"
        shown = cli("evaluate", task, "--model", model, "--data", data, "--predictions", preds)
        assert shown.code == 0, shown.err
        metrics, rows = tasktool.evaluate(task, model=model, data=str(data), return_predictions=True)
        assert json.loads(shown.out) == metrics
        assert [json.loads(line) for line in preds.read_text().splitlines()] == json.loads(json.dumps(rows))
