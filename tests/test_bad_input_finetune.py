"""The bad-input catalogue for finetune, evaluate and recipes, plus fine-tuning safety.

Every mistake ends in one line naming the problem (the row, the column, the key) and the fix,
a non-zero exit code and no traceback; nothing secret or outside the data folder is touched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sample_data as samples
from conftest import assert_user_error

pytestmark = pytest.mark.slow  # fine-tuning runs / several processes: `make test-fast` leaves these out


@pytest.fixture(scope="module")
def cls_model(tiny):
    return tiny("text-classification", labels=["neg", "pos"])


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _ft(cli, task, data, out, *args):
    return cli("finetune", task, "--data", data, "--output-dir", out, *args)


GOOD = [{"text": "good film", "label": "pos"}, {"text": "bad film", "label": "neg"}] * 3


# --- data: labels, columns, rows ------------------------------------------------------------------


def test_mixed_int_and_string_labels_name_both_rows(cli, tmp_path):
    rows = [{"text": "a", "label": 0}, {"text": "b", "label": 1}, {"text": "c", "label": "pos"}]
    data = _jsonl(tmp_path / "mixed.jsonl", rows)
    assert_user_error(
        _ft(cli, "sentiment", data, tmp_path / "o"),
        "mixes numbers and names",
        "mixed.jsonl, row 1",
        "mixed.jsonl, row 3",
        "label_names",
        code=2,
    )


def test_mixed_labels_in_a_csv_column_are_refused_too(cli, tmp_path):
    data = tmp_path / "mixed.csv"
    data.write_text("text,label\ngood,pos\nbad,0\nok,pos\n")
    assert_user_error(_ft(cli, "sentiment", data, tmp_path / "o"), "mixes numbers and names", "row 2")


def test_empty_label_cell_in_csv_names_the_row(cli, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("text,label\ngood,pos\nbad,\nok,neg\n")
    assert_user_error(_ft(cli, "sentiment", data, tmp_path / "o"), "d.csv, row 2", "no label", code=2)


def test_nan_label_in_csv_names_the_row(cli, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("text,label\ngood,pos\nbad,neg\nmeh,NaN\n")
    assert_user_error(_ft(cli, "sentiment", data, tmp_path / "o"), "d.csv, row 3", "no label", "'NaN'")


def test_nan_label_in_parquet_names_the_row(cli, tmp_path):
    pd = pytest.importorskip("pandas")
    data = tmp_path / "d.parquet"
    pd.DataFrame({"text": ["a", "b", "c"], "label": [1.0, float("nan"), 0.0]}).to_parquet(data)
    assert_user_error(_ft(cli, "sentiment", data, tmp_path / "o"), "d.parquet, row 2", "no label")


def test_empty_text_names_the_row(cli, tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "pos"}, {"text": "  ", "label": "neg"}])
    assert_user_error(_ft(cli, "sentiment", data, tmp_path / "o"), "d.jsonl, row 2", "empty text")


def test_a_single_label_cannot_train_a_classifier(cli, tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", [{"text": t, "label": "pos"} for t in "abcd"])
    assert_user_error(_ft(cli, "sentiment", data, tmp_path / "o"), "single label", "two labels")


@pytest.mark.parametrize("name,content", [("empty.csv", ""), ("blank.jsonl", "\n\n"), ("empty.txt", "")])
def test_empty_training_file(cli, tmp_path, name, content):
    data = tmp_path / name
    data.write_text(content)
    result = _ft(cli, "sentiment", data, tmp_path / "o")
    assert_user_error(result, name)
    assert "no rows" in result.err or "no inputs" in result.err


def test_one_row_is_too_little_to_hold_out_an_evaluation_split(cli, tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "pos"}])
    assert_user_error(_ft(cli, "sentiment", data, tmp_path / "o"), "fewer than 2 rows", "--eval-data")


def test_missing_data(cli):
    assert_user_error(cli("finetune", "sentiment"), "no training data", "--data", code=2)


def test_data_and_dataset_together(cli, tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", GOOD)
    result = cli("finetune", "sentiment", "--data", data, "--dataset", "glue")
    assert_user_error(result, "one way", "not both")


def test_data_file_not_found(cli, tmp_path):
    assert_user_error(_ft(cli, "sentiment", tmp_path / "nope.csv", tmp_path / "o"), "nope.csv", "not found")


def test_column_that_does_not_exist_lists_the_columns(cli, tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", [{"review": "a", "stars": 1}, {"review": "b", "stars": 2}])
    result = _ft(cli, "sentiment", data, tmp_path / "o", "--text-column", "reviw")
    assert_user_error(result, "text column 'reviw' not found", "review, stars", "did you mean 'review'")


def test_no_default_text_column_lists_the_columns(cli, tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", [{"body": "a", "label": "x"}, {"body": "b", "label": "y"}])
    assert_user_error(_ft(cli, "sentiment", data, tmp_path / "o"), "no text column", "body, label")


def test_ner_tokens_and_tags_of_different_length(cli, tmp_path):
    rows = [{"tokens": ["John", "ran"], "ner_tags": ["B-PER", "O"]}, {"tokens": ["Mary"], "ner_tags": []}]
    data = _jsonl(tmp_path / "ner.jsonl", rows)
    assert_user_error(_ft(cli, "ner", data, tmp_path / "o"), "ner.jsonl, row 2", "tokens but", "tags")


def test_ner_tags_that_are_not_a_list(cli, tmp_path):
    rows = [{"tokens": ["John", "ran"], "ner_tags": 5}, {"tokens": ["a"], "ner_tags": ["O"]}]
    result = _ft(cli, "ner", _jsonl(tmp_path / "ner.jsonl", rows), tmp_path / "o")
    assert_user_error(result, "ner.jsonl, row 1", "must be lists")


def test_qa_answer_not_in_the_context(cli, tmp_path):
    rows = [
        {
            "question": "Where?",
            "context": "It is in Paris.",
            "answers": {"text": ["Paris"], "answer_start": [9]},
        },
        {"question": "Who?", "context": "Mary ran.", "answers": {"text": ["John"], "answer_start": [0]}},
    ]
    result = _ft(cli, "qa", _jsonl(tmp_path / "qa.jsonl", rows), tmp_path / "o")
    assert_user_error(result, "qa.jsonl, row 2", "'John'")


def test_eval_labels_unseen_in_training_are_a_warning_naming_the_row(cli, cls_model, tmp_path):
    train = _jsonl(tmp_path / "t.jsonl", GOOD)
    dev = _jsonl(tmp_path / "dev.jsonl", [{"text": "x", "label": "pos"}, {"text": "y", "label": "meh"}])
    result = cli(
        "finetune",
        "sentiment",
        "--data",
        train,
        "--eval-data",
        dev,
        "--model",
        cls_model,
        "-o",
        tmp_path / "o",
        "--max-steps",
        "1",
    )
    assert result.code == 0, result.err
    assert "dev.jsonl, row 2" in result.err and "'meh'" in result.err and "neg, pos" in result.err


def test_evaluate_with_labels_the_model_does_not_know_counts_them_as_errors(cli, cls_model, tmp_path):
    dev = _jsonl(tmp_path / "dev.jsonl", [{"text": "x", "label": "pos"}, {"text": "y", "label": "meh"}])
    result = cli("evaluate", "sentiment", "--model", cls_model, "--data", dev)
    assert result.code == 0, result.err
    assert "row 2" in result.err and "'meh'" in result.err and "count as errors" in result.err


# --- recipes and overrides -------------------------------------------------------------------------


def test_recipe_file_with_an_unknown_key_names_the_nearest(cli, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("epochs: 1\nlearning_rat: 3e-5\n")
    result = cli("finetune", "sentiment", "--data", "x.csv", "--recipe", recipe)
    assert_user_error(result, "unknown recipe key 'learning_rat'", "r.yaml", "did you mean 'lr'", code=2)


def test_recipe_file_with_a_wrong_type(cli, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("lr: fast\n")
    result = cli("finetune", "sentiment", "--data", "x.csv", "--recipe", recipe)
    assert_user_error(result, "'lr'", "must be a number", "'fast'", code=2)


def test_recipe_file_that_is_not_yaml_or_not_a_mapping(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [1, 2\n")
    assert_user_error(cli("finetune", "sentiment", "--data", "x.csv", "--recipe", bad), "not valid YAML")
    listed = tmp_path / "list.yaml"
    listed.write_text("- lr\n- epochs\n")
    assert_user_error(cli("finetune", "sentiment", "--data", "x.csv", "--recipe", listed), "mapping")


def test_recipe_file_not_found(cli, tmp_path):
    result = cli("finetune", "sentiment", "--data", "x.csv", "--recipe", tmp_path / "none.yaml")
    assert_user_error(result, "none.yaml", "not found")


def test_override_without_equals_sign(cli):
    result = cli("finetune", "sentiment", "--data", "x.csv", "lr3e-5")
    assert_user_error(result, "cannot read 'lr3e-5' as an override", "key=value", code=2)


def test_override_with_a_wrong_type_and_an_unknown_key(cli):
    assert_user_error(cli("finetune", "sentiment", "--data", "x.csv", "epochs=abc"), "'epochs'", "number")
    assert_user_error(
        cli("finetune", "sentiment", "--data", "x.csv", "batchsize=8"), "unknown recipe key", "batch_size"
    )


@pytest.mark.parametrize(
    "override,words",
    [
        ("warmup_ratio=2", ["warmup_ratio", "[0, 1)"]),
        ("precision=fp8", ["unknown precision", "fp32"]),
        ("optimizer=adamw_fusd", ["unknown optimizer 'adamw_fusd'", "adamw_torch_fused"]),
        ("micro_batches=two", ["micro_batches must be", "micro_batches=2"]),
        ("eval_fraction=1.5", ["eval_fraction", "between 0 and 1"]),
    ],
)
def test_out_of_range_recipe_values(cli, cls_model, tmp_path, override, words):
    data = _jsonl(tmp_path / "d.jsonl", GOOD)
    result = cli(
        "finetune", "sentiment", "--data", data, "--model", cls_model, "-o", tmp_path / "o", override
    )
    assert_user_error(result, *words)


def test_recipes_show_of_an_unknown_task(cli):
    assert_user_error(cli("recipes", "show", "sentimant"), "unknown task")


# --- tasks and models ------------------------------------------------------------------------------


def test_unknown_task_for_finetune_and_evaluate(cli):
    assert_user_error(cli("finetune", "sentimant", "--data", "x.csv"), "unknown task", code=2)
    assert_user_error(cli("evaluate", "nerr", "--data", "x.csv"), "unknown task", code=2)


def test_a_task_without_a_trainer(cli, monkeypatch):
    import dataclasses

    from tasktool.tasks import registry

    # every task trains now: an inference-only entry stands in for one that would not
    spec = dataclasses.replace(registry.TASKS["object-detection"], modes=("infer",))
    monkeypatch.setitem(registry.TASKS, "object-detection", spec)
    assert_user_error(
        cli("finetune", "object-detection", "--data", "x.csv"), "not available", "object-detection"
    )
    assert_user_error(cli("evaluate", "object-detection", "--data", "x.csv"), "not available")


def test_output_dir_that_is_an_existing_file(cli, cls_model, tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", GOOD)
    target = tmp_path / "model.txt"
    target.write_text("not a folder")
    result = cli("finetune", "sentiment", "--data", data, "--model", cls_model, "-o", target)
    assert_user_error(result, "model.txt", "is a file", code=2)
    assert target.read_text() == "not a folder"


def test_model_folder_with_missing_files(cli, cls_model, tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", GOOD)
    broken = tmp_path / "broken"
    shutil.copytree(cls_model, broken)
    (broken / "model.safetensors").unlink()
    result = cli("finetune", "sentiment", "--data", data, "--model", broken, "-o", tmp_path / "o")
    assert_user_error(result, "broken")
    no_config = tmp_path / "no-config"
    shutil.copytree(cls_model, no_config)
    (no_config / "config.json").unlink()
    result = cli("finetune", "sentiment", "--data", data, "--model", no_config, "-o", tmp_path / "o2")
    assert_user_error(result, "no-config")


def test_offline_hub_id_as_model(cli, tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", GOOD)
    result = cli(
        "finetune", "sentiment", "--data", data, "--model", "someone/not-cached-model", "-o", tmp_path / "o"
    )
    assert_user_error(result, "someone/not-cached-model")
    assert "offline" in result.err.lower() or "unreachable" in result.err.lower()


def test_evaluate_on_a_folder_that_is_not_a_model(cli, tmp_path):
    dev = _jsonl(tmp_path / "dev.jsonl", GOOD)
    folder = tmp_path / "just-data"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    result = cli("evaluate", "sentiment", "--model", folder, "--data", dev)
    assert_user_error(result, "just-data")


def test_evaluate_without_data_or_with_a_missing_file(cli, cls_model, tmp_path):
    assert_user_error(cli("evaluate", "sentiment", "--model", cls_model), "evaluation data", code=2)
    result = cli("evaluate", "sentiment", "--model", cls_model, "--data", tmp_path / "none.jsonl")
    assert_user_error(result, "none.jsonl", "not found")


def test_evaluate_on_an_empty_file(cli, cls_model, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert_user_error(cli("evaluate", "sentiment", "--model", cls_model, "--data", empty), "no rows")


# --- audio and image training data -------------------------------------------------------------------


def _image_manifest(tmp_path: Path) -> Path:
    folder = samples.write_image_classes(tmp_path / "imgs", per_class=2)
    (folder / "empty.png").write_bytes(b"")
    whole = (folder / "red" / "red_0.png").read_bytes()
    (folder / "cut.png").write_bytes(whole[: len(whole) // 2])
    rows = [
        {"file_name": str(p.relative_to(folder)), "label": p.parent.name} for p in folder.rglob("*_*.png")
    ]
    rows += [{"file_name": "empty.png", "label": "red"}, {"file_name": "cut.png", "label": "blue"}]
    samples.write_csv(folder / "metadata.csv", rows)
    return folder


def test_zero_byte_and_truncated_images_stop_a_strict_run_naming_them(cli, tiny, tmp_path):
    folder = _image_manifest(tmp_path)
    result = cli(
        "finetune", "image-classification", "--data", folder, "--model", tiny("image-classification"),
        "-o", tmp_path / "o", "--strict", "--eval-data", samples.write_image_classes(tmp_path / "dev", 1),
    )  # fmt: skip
    assert_user_error(result, "2 of 6", "cannot be read", "empty.png", "without --strict")
    assert not (tmp_path / "o" / "config.json").exists()


def test_zero_byte_and_truncated_images_are_skipped_with_a_count(cli, tiny, tmp_path):
    folder = _image_manifest(tmp_path)
    result = cli(
        "finetune", "image-classification", "--data", folder, "--model", tiny("image-classification"),
        "-o", tmp_path / "o", "max_steps=1", "batch_size=2",
        "--eval-data", samples.write_image_classes(tmp_path / "dev", 1),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "skipped 2 of 6 training image file(s)" in " ".join(result.err.split())
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["train"]["train_examples"] == 4
    assert "Traceback" not in result.err


def test_zero_byte_and_truncated_audio_stop_a_strict_run(cli, tiny, tmp_path):
    folder = samples.write_audio_classes(tmp_path / "audio", per_class=2)
    (folder / "low" / "empty.wav").write_bytes(b"")
    whole = (folder / "high" / "high_0.wav").read_bytes()
    (folder / "high" / "cut.wav").write_bytes(whole[:30])
    result = cli(
        "finetune", "audio-classification", "--data", folder,
        "--model", tiny("audio-classification", labels=["high", "low"]), "-o", tmp_path / "o", "--strict",
        "--eval-data", samples.write_audio_classes(tmp_path / "dev", 1),
    )  # fmt: skip
    assert_user_error(result, "2 of 6", "cannot be read", "without --strict")


# --- safety: paths, tokens, remote code ------------------------------------------------------------


@pytest.mark.parametrize("entry", ["../../etc/passwd", "/etc/passwd", "sub/../../outside.png"])
def test_training_manifest_paths_cannot_leave_the_manifest_folder(cli, tiny, tmp_path, entry):
    folder = samples.write_image_classes(tmp_path / "imgs", per_class=2)
    rows = [{"file_name": "red/red_0.png", "label": "red"}, {"file_name": entry, "label": "blue"}]
    samples.write_csv(folder / "train.csv", rows)
    result = cli(
        "finetune", "image-classification", "--data", folder / "train.csv",
        "--model", tiny("image-classification"), "-o", tmp_path / "o",
    )  # fmt: skip
    assert_user_error(result, "train.csv, row 2", entry, "--allow-absolute-paths", code=2)


def test_allow_absolute_paths_lets_a_training_manifest_name_files_elsewhere(tmp_path):
    from tasktool.io.kinds import IMAGE
    from tasktool.io.media import read_examples
    from tasktool.io.readers import Source

    elsewhere = samples.write_image_classes(tmp_path / "elsewhere", per_class=1)
    manifest_dir = tmp_path / "manifests"
    manifest_dir.mkdir()
    rows = [{"file_name": str(p), "label": p.parent.name} for p in sorted(elsewhere.rglob("*.png"))]
    samples.write_csv(manifest_dir / "train.csv", rows)
    examples = read_examples(Source(str(manifest_dir / "train.csv")), IMAGE, "label", allow_outside=True)
    assert [ex["path"] for ex in examples] == [r["file_name"] for r in rows]


def test_evaluate_manifest_paths_cannot_leave_the_manifest_folder(cli, tiny, tmp_path):
    folder = samples.write_image_classes(tmp_path / "imgs", per_class=1)
    samples.write_csv(folder / "dev.csv", [{"file_name": "../secret.png", "label": "red"}])
    result = cli(
        "evaluate",
        "image-classification",
        "--model",
        tiny("image-classification"),
        "--data",
        folder / "dev.csv",
    )
    assert_user_error(result, "dev.csv, row 1", "outside", "--allow-absolute-paths")


def test_infer_manifest_paths_cannot_leave_the_manifest_folder(cli, tiny, tmp_path):
    model = tiny("image-classification")
    inside = samples.write_image_classes(tmp_path / "imgs", per_class=1)
    manifest = inside / "list.jsonl"
    _jsonl(manifest, [{"path": "red/red_0.png"}, {"path": str(tmp_path / "other.png")}])
    result = cli("infer", "image-classification", "--file", manifest, "--model", model)
    assert_user_error(result, "list.jsonl, row 2", "absolute path", "--allow-absolute-paths")
    shutil.copy(inside / "blue" / "blue_0.png", tmp_path / "other.png")
    allowed = cli(
        "infer", "image-classification", "--file", manifest, "--model", model, "--allow-absolute-paths"
    )
    assert allowed.code == 0, allowed.err
    assert len(allowed.records()) == 2


def test_hf_token_is_never_printed_logged_or_saved_by_finetune(cli, cls_model, tmp_path, monkeypatch):
    secret = "hf_" + "SeCrEtMaRkEr" * 3
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", secret)
    data = _jsonl(tmp_path / "d.jsonl", GOOD * 2)
    out = tmp_path / "model"
    result = cli(
        "finetune", "sentiment", "--data", data, "--model", cls_model, "-o", out, "max_steps=2",
        "batch_size=4", "save_steps=1", "keep_checkpoints=true", "logging_steps=1",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert secret not in result.out + result.err
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "README.md" for p in files) and any(
        p.parent.name.startswith("checkpoint-") for p in files
    )
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
    assert secret not in (out / "README.md").read_text()
    evaluated = cli("evaluate", "sentiment", "--model", out, "--data", data, "--output", tmp_path / "m.json")
    assert evaluated.code == 0 and secret not in evaluated.out + evaluated.err
    assert secret not in (tmp_path / "m.json").read_text()


def test_finetune_does_not_run_remote_code_without_the_flag(cli, cls_model, tmp_path):
    folder = tmp_path / "remote"
    shutil.copytree(cls_model, folder)
    marker = tmp_path / "ran"
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "custom.MyConfig",
        "AutoModelForSequenceClassification": "custom.MyModel",
    }
    config["model_type"] = "my-custom"
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "custom.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\nfrom transformers import BertConfig as MyConfig\n"
    )
    data = _jsonl(tmp_path / "d.jsonl", GOOD)
    result = cli("finetune", "sentiment", "--data", data, "--model", folder, "-o", tmp_path / "o")
    assert_user_error(result, "trust")
    assert not marker.exists()


def test_only_a_runs_own_held_out_split_may_name_files_outside_its_folder(tmp_path):
    """eval.jsonl saved by finetune next to metrics.json keeps the training data's own paths; a
    metrics.json anyone could write beside a manifest is not enough (the run signs the split)."""
    from tasktool.errors import TaskToolError
    from tasktool.io.kinds import IMAGE
    from tasktool.io.media import read_examples, sign_held_out
    from tasktool.io.readers import Source

    images = samples.write_image_classes(tmp_path / "data", per_class=1)
    model = tmp_path / "model"
    model.mkdir()
    rows = [{"path": str(p), "label": p.parent.name} for p in sorted(images.rglob("*.png"))]
    _jsonl(model / "eval.jsonl", rows)
    with pytest.raises(TaskToolError, match="absolute path"):
        read_examples(Source(str(model / "eval.jsonl")), IMAGE, "label")
    (model / "metrics.json").write_text(json.dumps({"eval_data": "eval.jsonl"}))
    with pytest.raises(TaskToolError, match="absolute path"):
        read_examples(Source(str(model / "eval.jsonl")), IMAGE, "label")
    signed = {"eval_data": "eval.jsonl", "eval_data_signature": sign_held_out(model / "eval.jsonl")}
    (model / "metrics.json").write_text(json.dumps(signed))
    assert len(read_examples(Source(str(model / "eval.jsonl")), IMAGE, "label")) == 2
