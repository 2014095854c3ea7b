"""Smoke mode: `tasktool smoke` checks every task offline; --smoke checks a user's own command fast."""

from __future__ import annotations

import json

import pytest
import sample_data as samples
from conftest import assert_user_error

from tasktool.tasks.registry import TASKS

pytestmark = pytest.mark.slow  # fine-tuning runs / several processes: `make test-fast` leaves these out


def test_smoke_passes_for_every_task_in_the_registry(cli, tmp_path):
    result = cli("smoke", "--format", "jsonl", "--keep", tmp_path / "keep")
    rows = [json.loads(line) for line in result.out.splitlines()]
    assert [r["task"] for r in rows] == list(TASKS)
    failed = {r["task"]: r.get("error") for r in rows if not r["ok"]}
    assert not failed and result.code == 0, failed
    for row in rows:
        spec = TASKS[row["task"]]
        stages = {"infer"} | ({"finetune", "evaluate"} & set(spec.modes))
        expected = {"build", "total"} | stages
        # a sample's variants (text-generation: chat + LoRA on a Llama-style model) run every stage too
        for variant in getattr(spec.sample(), "VARIANTS", ()):
            expected |= {f"{variant} {stage}" for stage in (*stages, "build")}
        assert set(row["stages"]) == expected
    assert (tmp_path / "keep" / "token-classification" / "finetuned" / "config.json").exists()
    # the random tiny models' own warnings (below the baseline, ...) are not the user's to act on
    assert "warning" not in result.err, result.err


def test_smoke_reports_a_failing_task_and_exits_non_zero(cli, monkeypatch):
    from tasktool.tasks.text_classification import sample

    def broken(folder, spec=None):
        raise ValueError("sample data is broken")

    monkeypatch.setattr(sample, "write", broken)
    result = cli("smoke", "sentiment", "--format", "jsonl")
    assert result.code == 1
    row = json.loads(result.out)
    assert row["ok"] is False and "sample data is broken" in row["error"]


@pytest.fixture
def ner_files(tmp_path):
    good = samples.write_jsonl(tmp_path / "good.jsonl", samples.ner_rows(40))
    rows = samples.ner_rows(40)
    rows[5]["ner_tags"] = rows[5]["ner_tags"][:-1]
    bad = samples.write_jsonl(tmp_path / "bad.jsonl", rows)
    return good, bad


def test_finetune_smoke_fails_on_bad_data_with_the_full_runs_error(cli, ner_files):
    _, bad = ner_files
    full = cli("finetune", "ner", "--data", bad, "--quiet")
    smoke = cli("finetune", "ner", "--data", bad, "--smoke", "--quiet")
    assert_user_error(smoke, "row 6", "tokens", "tags")
    assert smoke.err.strip().splitlines()[-1] == full.err.strip().splitlines()[-1]


def test_finetune_smoke_passes_on_good_data_with_a_shrunk_model(cli, ner_files, tiny, tmp_path):
    good, _ = ner_files
    out = tmp_path / "smoke-out"
    base = tiny("token-classification", labels=["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    result = cli(
        "finetune", "ner", "--data", good, "--model", base, "--smoke", "--output-dir", out, "--quiet"
    )
    assert result.code == 0, result.err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["global_step"] == 3
    config = json.loads((out / "config.json").read_text())
    assert config["num_hidden_layers"] <= 2 and config["hidden_size"] == 32
    assert set(config["label2id"]) == {"O", "B-PER", "B-LOC"}  # the label set the data holds


def test_infer_smoke_runs_a_few_inputs_through_a_shrunk_copy_of_the_model(cli, tiny):
    model = tiny("text-classification", labels=["NEG", "POS"])
    texts = [f"sentence number {i}" for i in range(20)]
    result = cli("infer", "sentiment", *texts, "--model", model, "--smoke")
    assert result.code == 0, result.err
    records = result.records()
    assert len(records) == 8 and all(r["label"] in ("NEG", "POS") for r in records)


def test_infer_smoke_with_an_offline_hub_id_uses_the_family_default(cli):
    result = cli("infer", "ner", "John lives in Paris", "--model", "dslim/bert-base-NER", "--smoke")
    assert result.code == 0, result.err
    assert len(result.records()) == 1


def test_evaluate_smoke_scores_a_few_examples(cli, tiny, tmp_path):
    model = tiny("text-classification", labels=["negative", "positive"])
    data = samples.write_csv(tmp_path / "dev.csv", samples.classification_rows(30))
    out = tmp_path / "m.json"
    result = cli("evaluate", "sentiment", "--model", model, "--data", data, "--smoke", "--output", out)
    assert result.code == 0, result.err
    metrics = json.loads(out.read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics.get("examples", 8) == 8
