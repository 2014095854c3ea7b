"""Lengths are clamped to what the model takes, everywhere, with a one-line warning (infer) or note
(finetune); smoke mode's shrunk model keeps the real model's position limit, or room for the recipe's."""

from __future__ import annotations

import json

import pytest

from tasktool.tasks.registry import resolve


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A classifier whose position table holds 128 tokens."""
    return resolve("text-classification").build_tiny(tmp_path_factory.mktemp("cls"), labels=["NEG", "POS"])


def test_max_length_beyond_the_model_is_clamped_with_one_warning(cli, model, tmp_path):
    long = tmp_path / "long.txt"
    long.write_text("".join(" ".join(["word"] * n) + "\n" for n in (900, 700, 5)))
    result = cli("infer", "sentiment", "--file", long, "--max-length", "1024", "--model", model)
    assert result.code == 0, result.err
    assert len(result.records()) == 3 and not any("error" in r for r in result.records())
    warnings = [ln for ln in result.err.splitlines() if ln.startswith("warning:")]
    assert warnings == [
        "warning: --max-length 1024 is beyond what the model takes (128 tokens): using 128",
        "warning: inputs longer than 128 tokens are cut to their first 128 (the model's limit, "
        "--max-length or the recipe's max_length)",
    ]


def test_no_warning_when_nothing_is_cut(cli, model):
    result = cli("infer", "sentiment", "short text", "--max-length", "64", "--model", model)
    assert result.code == 0 and "warning" not in result.err


def test_an_ner_input_longer_than_the_model_is_cut_not_a_crash(cli, tiny):
    ner = tiny("token-classification", labels=["O", "B-PER", "I-PER"])
    result = cli("infer", "ner", " ".join(["john"] * 600), "--max-length", "4096", "--model", ner)
    assert result.code == 0, result.err
    assert "cut to their first 128" in result.err


@pytest.mark.slow
def test_finetune_lowers_a_recipe_length_beyond_the_model_with_a_note(cli, model, tmp_path):
    from sample_data import write_csv

    rows = [
        {"text": " ".join(["good"] * 300), "label": "POS"},
        {"text": " ".join(["bad"] * 300), "label": "NEG"},
    ]
    data = write_csv(tmp_path / "long.csv", rows * 4)
    out = tmp_path / "out"
    result = cli(
        "finetune", "sentiment", "--data", data, "--model", model, "-o", out, "max_steps=1", "max_length=400"
    )
    assert result.code == 0, result.err
    assert "note: max_length 400 is beyond what the model takes (128 tokens): using 128" in result.err
    assert "max_length: 128" in (out / "recipe.yaml").read_text()


def test_shrunk_model_for_a_hub_id_has_room_for_the_recipes_lengths(tmp_path):
    from tasktool.recipes import resolve_recipe
    from tasktool.tiny.shrink import shrunk_model, smoke_positions

    for task in ("question-answering", "summarization", "text-generation"):
        spec = resolve(task)
        recipe = resolve_recipe(spec.name)
        folder = shrunk_model(spec, "someone/not-here", tmp_path / task, None, smoke_positions(recipe))
        config = json.loads((folder / "config.json").read_text())
        positions = config.get("max_position_embeddings") or config.get("n_positions")
        wanted = max(int(recipe.get(k) or 0) for k in ("max_length", "max_target_length", "block_size"))
        assert positions >= max(512, wanted), (task, positions)
        assert json.loads((folder / "tokenizer_config.json").read_text())["model_max_length"] >= wanted


def test_shrunk_model_of_a_local_folder_keeps_its_position_limit(tmp_path):
    from tasktool.tiny.shrink import shrunk_model

    spec = resolve("text-classification")
    real = spec.build_tiny(tmp_path / "real", labels=["a", "b"], max_length=300)
    folder = shrunk_model(spec, str(real), tmp_path / "shrunk", None, 4096)
    config = json.loads((folder / "config.json").read_text())
    assert config["max_position_embeddings"] == 300 and config["id2label"] == {"0": "a", "1": "b"}
