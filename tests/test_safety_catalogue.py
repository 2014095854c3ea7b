"""The hostile catalogue of issue 22: nothing lost, nothing let in.

One test per class of defect the catalogue found: data loss (resume, outputs on inputs, two runs on
one output, ids), gates (pickle weights, manifest paths, CSV formulas), silent wrong results
(tokenizer files, value ranges, readers, NaN, held-out splits), one bad item sinking a run, markup in
tables, and the messages. Each asserts the fixed behaviour: the exit code, the message, and that the
files the user gave are unchanged (by hash).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, assert_user_error

LABELS = ["NEG", "POS"]


@pytest.fixture(scope="module")
def model(tiny):
    return tiny("text-classification", labels=LABELS)


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def strict_records(path: Path) -> list[dict]:
    """JSON Lines parsed the strict way: NaN/Infinity are not JSON."""

    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text(encoding="utf-8").splitlines()]


def write_texts(path: Path, n: int) -> Path:
    path.write_text("".join(f"good film number {i}\n" if i % 2 else f"dull film {i}\n" for i in range(n)))
    return path


def interrupt_after(monkeypatch, k: int) -> None:
    """The engine stops after k records as a Ctrl-C would (finished records written, exit 130)."""
    from tasktool import engine

    real = engine.Engine.run

    def run(self, items):
        for n, record in enumerate(real(self, items)):
            if n == k:
                raise engine.Interrupted()
            yield record

    monkeypatch.setattr(engine.Engine, "run", run)


def infer(cli, model, *args, input=None):
    return cli("infer", "sentiment", *args, "--model", model, input=input)


# ---------------------------------------------------------------------------------------- data loss


def test_resume_never_reads_or_shrinks_an_earlier_complete_output(cli, model, tmp_path, monkeypatch):
    inputs = write_texts(tmp_path / "in.txt", 30)
    out = tmp_path / "out.jsonl"
    assert infer(cli, model, "--file", inputs, "-o", out).code == 0
    complete = digest(out)
    with monkeypatch.context() as m:  # a second plain run on the same output, stopped by Ctrl-C
        interrupt_after(m, 7)
        stopped = infer(cli, model, "--file", inputs, "-o", out, "--batch-size", "4")
    assert stopped.code == 130 and "--resume --overwrite" in stopped.err
    assert digest(out) == complete and len(strict_records(Path(f"{out}.partial"))) == 7

    refused = infer(cli, model, "--file", inputs, "-o", out, "--resume")
    assert_user_error(refused, "would replace", "--overwrite", code=2)
    assert digest(out) == complete

    done = infer(cli, model, "--file", inputs, "-o", out, "--resume", "--overwrite")
    assert done.code == 0, done.err
    assert [r["id"] for r in strict_records(out)] == list(range(30))
    assert not Path(f"{out}.partial").exists() and not Path(f"{out}.partial.meta").exists()


def test_resume_of_a_complete_output_with_nothing_unfinished_is_refused(cli, model, tmp_path):
    inputs = write_texts(tmp_path / "in.txt", 5)
    out = tmp_path / "out.jsonl"
    assert infer(cli, model, "--file", inputs, "-o", out).code == 0
    before = digest(out)
    assert_user_error(infer(cli, model, "--file", inputs, "-o", out, "--resume"), "is complete", code=2)
    assert digest(out) == before


def test_resume_refuses_a_partial_written_for_other_inputs_or_options(cli, model, tmp_path, monkeypatch):
    inputs = write_texts(tmp_path / "in.txt", 20)
    out = tmp_path / "out.jsonl"
    with monkeypatch.context() as m:
        interrupt_after(m, 5)
        assert infer(cli, model, "--file", inputs, "-o", out, "--batch-size", "2").code == 130
    partial = Path(f"{out}.partial")
    kept = digest(partial)
    other = infer(cli, model, "--file", inputs, "-o", out, "--resume", "--max-length", "8")
    assert_user_error(other, "other inputs or options", "--max-length", code=2)
    with open(inputs, "a") as fh:
        fh.write("one more line\n")
    assert_user_error(
        infer(cli, model, "--file", inputs, "-o", out, "--resume"), "input file contents", code=2
    )
    assert digest(partial) == kept


def test_resume_from_stdin_checks_every_finished_record_against_its_input(cli, model, tmp_path, monkeypatch):
    lines = "".join(f"line {i}\n" for i in range(12))
    out = tmp_path / "out.jsonl"
    with monkeypatch.context() as m:
        interrupt_after(m, 4)
        assert infer(cli, model, "-", "-o", out, "--batch-size", "2", input=lines).code == 130
    changed = lines.replace("line 2\n", "line two\n")
    assert_user_error(
        infer(cli, model, "-", "-o", out, "--resume", input=changed), "record 3", "inputs changed", code=2
    )
    done = infer(cli, model, "-", "-o", out, "--resume", input=lines)
    assert done.code == 0, done.err
    assert [r["input"] for r in strict_records(out)] == [f"line {i}" for i in range(12)]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_output_equal_to_the_input_file_is_refused_and_the_input_kept(cli, model, tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    path.write_text('{"text": "good"}\n' if suffix == ".jsonl" else "text\ngood\n")
    before = digest(path)
    assert_user_error(infer(cli, model, "--file", path, "-o", path), "input file itself", code=2)
    link = tmp_path / f"link{suffix}"
    link.symlink_to(path)
    assert_user_error(infer(cli, model, "--file", path, "-o", link), "input file itself", code=2)
    hard = tmp_path / f"hard{suffix}"
    os.link(path, hard)
    assert_user_error(infer(cli, model, "--file", path, "-o", hard), "input file itself", code=2)
    assert digest(path) == before


def test_output_inside_the_model_folder_is_refused(cli, model, tmp_path):
    before = digest(Path(model) / "config.json")
    assert_user_error(infer(cli, model, "hi", "-o", Path(model) / "config.json"), "model folder", code=2)
    assert digest(Path(model) / "config.json") == before


@pytest.mark.parametrize("flag", ["--output", "--predictions"])
def test_evaluate_refuses_outputs_on_its_data_before_evaluating(cli, model, tmp_path, flag):
    data = tmp_path / "test.csv"
    data.write_text("text,label\ngood,POS\nbad,NEG\n")
    before = digest(data)
    # a model that does not exist: the output check comes first, before anything is read or loaded
    result = cli("evaluate", "sentiment", "--model", tmp_path / "nope", "--data", data, flag, data)
    assert_user_error(result, flag, "data itself", code=2)
    assert digest(data) == before
    same = cli(
        "evaluate", "sentiment", "--model", model, "--data", data, "-o", tmp_path / "m.json",
        "--predictions", tmp_path / "m.json",
    )  # fmt: skip
    assert_user_error(same, "same file", code=2)


def test_a_second_run_on_a_locked_output_refuses_at_once_with_exit_1(cli, model, tmp_path):
    from tasktool.io.outputs import OutputLock

    out = tmp_path / "out.jsonl"
    with OutputLock(out):
        result = infer(cli, model, "hi", "-o", out)
        assert_user_error(result, "being written by another tasktool run", f"pid {os.getpid()}", code=1)
    assert not out.exists() and not Path(f"{out}.lock").exists()
    assert infer(cli, model, "hi", "-o", out).code == 0


def test_a_lock_left_by_a_dead_run_is_taken_over_with_a_note(cli, model, tmp_path):
    import subprocess

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out.jsonl"
    Path(f"{out}.lock").write_text(f"{dead.pid}\n")
    result = infer(cli, model, "hi", "-o", out)
    assert result.code == 0, result.err
    assert "taking over" in result.err and str(dead.pid) in result.err
    assert len(strict_records(out)) == 1 and not Path(f"{out}.lock").exists()


def test_a_second_finetune_on_a_locked_output_dir_refuses_at_once(cli, model, tmp_path):
    from tasktool.io.outputs import OutputLock

    data = tmp_path / "train.csv"
    data.write_text("text,label\n" + "".join(f"good {i},POS\nbad {i},NEG\n" for i in range(5)))
    out = tmp_path / "model-out"
    with OutputLock(out, "--output-dir"):
        result = cli("finetune", "sentiment", "--data", data, "--model", model, "-o", out, "--quiet")
    assert_user_error(result, "being written by another tasktool run", "--output-dir", code=1)
    assert not out.exists()


def test_repeated_ids_are_refused_naming_the_first_duplicate(cli, model, tmp_path):
    path = tmp_path / "in.jsonl"
    rows = [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}, {"id": "a", "text": "z"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    assert_user_error(infer(cli, model, "--file", path, "-o", out), "input 3", "'a'", "input 1", code=2)
    assert not out.exists() and not Path(f"{out}.partial").exists()


def test_a_mix_of_given_ids_and_row_numbers_is_refused(cli, model, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": 1, "text": "x"}\n{"text": "y"}\n{"id": 5, "text": "z"}\n')
    assert_user_error(infer(cli, model, "--file", path), "input 2", "has no an 'id'", code=2)


def test_float_ids_are_written_exactly_as_read(cli, model, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"id": 0.1234567, "text": "x"}\n{"id": 0.1234568, "text": "y"}\n{"id": 1e20, "text": "z"}\n'
    )
    out = tmp_path / "out.jsonl"
    assert infer(cli, model, "--file", path, "-o", out).code == 0
    assert [r["id"] for r in strict_records(out)] == [0.1234567, 0.1234568, 1e20]
    csv_out = tmp_path / "out.csv"
    assert infer(cli, model, "--file", path, "-o", csv_out).code == 0
    assert [row["id"] for row in csv.DictReader(open(csv_out))] == ["0.1234567", "0.1234568", "1e+20"]


@pytest.fixture(scope="module")
def detector(tiny):
    return tiny("object-detection", labels=["cat", "remote", "couch"])


def test_save_visuals_into_the_input_folder_is_refused_and_no_image_replaced(cli, detector, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(FIXTURES / "images" / "cat.jpg", photos / "x.jpg")
    shutil.copy(FIXTURES / "images" / "chelsea.png", photos / "x-1.png")  # the name x.jpg's picture gets
    before = {p.name: digest(p) for p in photos.iterdir()}
    args = ("--model", detector, "--threshold", "0")
    result = cli("infer", "detect", photos, "--save-visuals", photos, *args)
    assert_user_error(result, "--save-visuals", "input folder", code=2)
    nested = cli("infer", "detect", photos, "--save-visuals", photos / "boxes", *args)
    assert_user_error(nested, "--save-visuals", "input folder", code=2)
    direct = cli("infer", "detect", photos / "x.jpg", "--save-visuals", photos, *args)
    assert_user_error(direct, "--save-visuals", "holds the input", code=2)
    assert {p.name: digest(p) for p in photos.iterdir()} == before
    ok = cli("infer", "detect", photos, "--save-visuals", tmp_path / "boxes", *args)
    assert ok.code == 0, ok.err
    assert sorted(p.name for p in (tmp_path / "boxes").iterdir()) == ["x-1-0.png", "x-1.png"]


def _image_classes(root: Path) -> Path:
    for label, name in (("cat", "cat.jpg"), ("dog", "dog.jpg")):
        (root / label).mkdir(parents=True)
        for i in range(3):
            shutil.copy(FIXTURES / "images" / name, root / label / f"{i}.jpg")
    return root


def test_an_output_dir_inside_an_image_class_folder_is_refused(cli, tmp_path):
    photos = _image_classes(tmp_path / "photos")
    result = cli("finetune", "image-classification", "--data", photos, "-o", photos / "model", "--quiet")
    assert_user_error(result, "--output-dir", "inside the training data", code=2)
    assert sorted(p.name for p in photos.iterdir()) == ["cat", "dog"]


def test_a_model_folder_left_inside_image_class_data_is_never_read_as_a_class(tmp_path):
    from tasktool.errors import TaskToolError
    from tasktool.io.media import read_examples
    from tasktool.io.readers import Source

    photos = _image_classes(tmp_path / "photos")
    (photos / "model").mkdir()
    (photos / "model" / "config.json").write_text("{}")
    shutil.copy(FIXTURES / "images" / "cat.jpg", photos / "model" / "loss_curve.png")
    with pytest.raises(TaskToolError, match="holds a model or run output"):
        read_examples(Source(str(photos)), "image", "label")


# ---------------------------------------------------------------------------------------- gates


def _pickled_copy(model, folder: Path) -> Path:
    import torch
    from safetensors.torch import load_file

    shutil.copytree(model, folder)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    return folder


def test_a_stray_safetensors_file_does_not_open_the_pickle_gate(cli, model, tmp_path):
    folder = _pickled_copy(model, tmp_path / "m")
    (folder / "extra.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    assert_user_error(
        infer(cli, folder, "hi"), "pickle weights (pytorch_model.bin)", "--allow-pickle", code=2
    )
    assert infer(cli, folder, "hi", "--allow-pickle").code == 0


def test_a_config_naming_a_pickle_file_does_not_open_the_pickle_gate(cli, model, tmp_path):
    folder = _pickled_copy(model, tmp_path / "m")
    shutil.copy(Path(model) / "model.safetensors", folder / "model.safetensors")
    (folder / "pytorch_model.bin").rename(folder / "adapter_model.bin")
    config = json.loads((folder / "config.json").read_text())
    config["transformers_weights"] = "adapter_model.bin"
    (folder / "config.json").write_text(json.dumps(config))
    assert_user_error(infer(cli, folder, "hi"), "pickle weights (adapter_model.bin)", code=2)


def test_manifest_symlinks_that_leave_its_folder_are_refused(tmp_path):
    from tasktool.errors import TaskToolError
    from tasktool.io.media import manifest_path

    root = tmp_path / "data"
    root.mkdir()
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"x")
    (root / "inside.wav").symlink_to(secret)
    (root / "sub").symlink_to(tmp_path)
    for entry in ("inside.wav", "sub/secret.wav"):
        with pytest.raises(TaskToolError, match="outside the manifest's folder"):
            manifest_path(entry, root, "m.csv, row 1")
    assert manifest_path("inside.wav", root, "m.csv, row 1", allow_outside=True)


def test_no_file_beside_a_manifest_switches_the_containment_check_off(tmp_path):
    from tasktool.errors import TaskToolError
    from tasktool.io.media import read_examples, sign_held_out
    from tasktool.io.readers import Source

    shared = tmp_path / "shared"
    shared.mkdir()
    manifest = shared / "eval.jsonl"
    manifest.write_text(json.dumps({"path": "/etc/passwd", "label": "x"}) + "\n")
    (shared / "config.json").write_text("{}")
    forged = {"eval_data": "eval.jsonl", "eval_data_signature": "0" * 64}
    (shared / "metrics.json").write_text(json.dumps(forged))
    with pytest.raises(TaskToolError, match="absolute path"):
        read_examples(Source(str(manifest)), "audio", "label")
    # the split a fine-tuning run of this user wrote (signed with the user's own key) is trusted
    genuine = {"eval_data": "eval.jsonl", "eval_data_signature": sign_held_out(manifest)}
    (shared / "metrics.json").write_text(json.dumps(genuine))
    assert read_examples(Source(str(manifest)), "audio", "label")[0]["path"] == "/etc/passwd"
    manifest.write_text(json.dumps({"path": "/etc/shadow", "label": "x"}) + "\n")  # edited since: untrusted
    with pytest.raises(TaskToolError, match="absolute path"):
        read_examples(Source(str(manifest)), "audio", "label")


def test_csv_output_cells_cannot_run_as_spreadsheet_formulas(cli, model, tmp_path):
    out = tmp_path / "out.csv"
    texts = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "plain"]
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    assert infer(cli, model, "--file", inputs, "-o", out).code == 0
    rows = list(csv.DictReader(open(out, newline="")))
    assert [r["input"] for r in rows] == ["'" + t for t in texts[:4]] + ["plain"]
    assert all(not r["score"].startswith("'") for r in rows)  # numbers stay numbers


# ---------------------------------------------------------------------------------------- silent wrong results


def test_a_model_folder_without_tokenizer_files_is_refused(cli, model, tmp_path):
    folder = tmp_path / "notok"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(Path(model) / name, folder / name)
    assert_user_error(infer(cli, folder, "hi"), "no tokenizer files", code=2)
    data = tmp_path / "train.csv"
    data.write_text("text,label\n" + "".join(f"good {i},POS\nbad {i},NEG\n" for i in range(5)))
    trained = cli("finetune", "sentiment", "--data", data, "--model", folder, "-o", tmp_path / "o", "--quiet")
    assert_user_error(trained, "no tokenizer files", code=2)
    assert not (tmp_path / "o" / "config.json").exists()


def test_an_image_model_folder_without_its_processor_settings_is_refused(cli, detector, tmp_path):
    folder = tmp_path / "noproc"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(Path(detector) / name, folder / name)
    result = cli("infer", "detect", FIXTURES / "images" / "cat.jpg", "--model", folder)
    assert_user_error(result, "no image processor settings", "preprocessor_config.json", code=2)


@pytest.mark.parametrize(
    "flag,value,words",
    [
        ("--max-new-tokens", "0", "at least 1"),
        ("--top-k", "0", "at least 1"),
        ("--num-beams", "0", "at least 1"),
        ("--threshold", "2", "between 0 and 1"),
        ("--top-p", "2", "in (0, 1]"),
        ("--top-p", "0", "in (0, 1]"),
        ("--temperature", "0", "greater than 0"),
        ("--max-length", "0", "at least 1"),
    ],
)
def test_out_of_range_infer_options_are_usage_errors_before_any_model_loads(
    cli, tmp_path, flag, value, words
):
    result = cli("infer", "sentiment", "hi", "--model", tmp_path / "no-such-model", flag, value)
    assert_user_error(result, flag, words, code=2)


@pytest.mark.parametrize(
    "args,words",
    [
        (["--epochs", "-1"], ["epochs", "greater than 0"]),
        (["--batch-size", "0"], ["batch_size", "at least 1"]),
        (["warmup_ratio=1.5"], ["warmup_ratio", "[0, 1)"]),
        (["eval_fraction=1"], ["eval_fraction", "between 0 and 1, both excluded"]),
        (["--lr", "0"], ["lr", "greater than 0"]),
        (["logging_steps=0"], ["logging_steps", "at least 1"]),
        (["lr_scheduler=cosin"], ["lr_scheduler", "did you mean cosine"]),
    ],
)
def test_out_of_range_recipe_values_are_usage_errors_naming_the_range(cli, tmp_path, args, words):
    data = tmp_path / "train.csv"
    data.write_text("text,label\ngood,POS\nbad,NEG\n")
    result = cli("finetune", "sentiment", "--data", data, "-o", tmp_path / "o", *args)
    assert_user_error(result, *words, code=2)
    assert not (tmp_path / "o").exists()


def test_a_stray_quote_in_a_tsv_is_an_error_not_merged_rows(cli, model, tmp_path):
    path = tmp_path / "in.tsv"
    path.write_text('text\tlabel\n"oops, a stray quote\tPOS\nfine\tNEG\nend"\tPOS\nlast\tNEG\n')
    assert_user_error(infer(cli, model, "--file", path), "lines 2-4", "stray quote", code=2)
    path.write_text('text\tlabel\nok\tPOS\n"Great" film\tPOS\n')
    assert_user_error(infer(cli, model, "--file", path), "line 3", "quoting", code=2)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("text,label\ngood,POS,extra\n")
    assert_user_error(infer(cli, model, "--file", ragged), "line 2", "3 cells", code=2)


def test_non_string_json_values_are_read_as_json_text_not_python_reprs(tmp_path):
    from tasktool.io.inputs import InputSpec, text_items

    path = tmp_path / "in.jsonl"
    path.write_text('{"text": {"a": [1, true]}}\n{"text": true}\n{"text": 2.5}\n{"text": null}\n')
    assert [i.payload for i in text_items(InputSpec(file=str(path)))] == [
        '{"a": [1, true]}',
        "true",
        "2.5",
        "",
    ]
    from tasktool.io.readers import Source
    from tasktool.tasks.registry import resolve

    labelled = tmp_path / "train.jsonl"  # finetune and evaluate read labelled rows the same way
    labelled.write_text('{"text": {"a": 1}, "label": "x"}\n{"text": false, "label": "y"}\n')
    examples = resolve("sentiment").reader({}, {}).read(Source(str(labelled)))
    assert [ex["text"] for ex in examples] == ['{"a": 1}', "false"]


def test_nan_audio_is_an_item_error_and_never_nan_in_json(cli, tiny, tmp_path):
    import numpy as np
    import soundfile as sf

    classifier = tiny(
        "audio-classification", labels=["zero", "three", "seven", "nine"]
    )  # as test_audio_inference
    good, bad = tmp_path / "good.wav", tmp_path / "bad.wav"
    sf.write(good, np.sin(np.linspace(0, 100, 16000)).astype("float32"), 16000, subtype="FLOAT")
    samples = np.zeros(16000, dtype="float32")
    samples[100] = np.nan
    sf.write(bad, samples, 16000, subtype="FLOAT")
    out = tmp_path / "out.jsonl"
    result = cli(
        "infer", "audio-classification", good, bad, "--model", classifier, "-o", out, "--on-error", "skip"
    )
    assert result.code == 0, result.err
    records = strict_records(out)
    assert "error" not in records[0] and "NaN" in records[1]["error"]
    assert_user_error(
        cli("infer", "audio-classification", bad, "--model", classifier), "NaN or infinite samples", code=1
    )


def test_a_non_finite_result_becomes_null_with_an_error_field():
    from tasktool.engine import Engine, Item, Predictor
    from tasktool.io.records import dumps

    class Nan(Predictor):
        def predict(self, batch):
            return [{"score": float("nan") if p == "bad" else 0.5, "label": "x"} for p in batch]

    records = list(Engine(Nan(), batch_size=4, on_error="skip").run([Item(0, "ok"), Item(1, "bad")]))
    assert "error" not in records[0] and "score" in records[1]["error"]
    record = json.loads(dumps(records[1]), parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert record["score"] is None


def test_resuming_a_finished_finetune_is_refused_and_changes_nothing(cli, tmp_path):
    out = tmp_path / "done"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "metrics.json").write_text(json.dumps({"train": {"train_loss": 0.5}}))
    before = digest(out / "metrics.json")
    data = tmp_path / "train.csv"
    data.write_text("text,label\ngood,POS\nbad,NEG\n")
    result = cli("finetune", "sentiment", "--data", data, "-o", out, "--resume", "--quiet")
    assert_user_error(result, "finished run", "nothing to resume", code=2)
    assert digest(out / "metrics.json") == before


def test_a_held_out_split_that_leaves_training_one_label_is_refused(cli, model, tmp_path):
    import random

    order = list(range(10))
    random.Random(42).shuffle(order)
    held_out = set(order[:1])  # eval_fraction 0.1 of 10 rows, seed 42
    data = tmp_path / "train.csv"
    data.write_text(
        "text,label\n" + "".join(f"text {i},{'NEG' if i in held_out else 'POS'}\n" for i in range(10))
    )
    result = cli("finetune", "sentiment", "--data", data, "--model", model, "-o", tmp_path / "o", "--quiet")
    assert_user_error(result, "after holding out", "single label", "--eval-data", code=2)


# ---------------------------------------------------------------------------------------- one bad item


def test_a_lone_surrogate_is_one_error_record_under_skip(cli, model, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "good"}\n{"text": "bad \\ud800 text"}\n{"text": "fine"}\n')
    out = tmp_path / "out.jsonl"
    result = infer(cli, model, "--file", path, "-o", out, "--on-error", "skip")
    assert result.code == 0, result.err
    records = strict_records(out)
    assert [("error" in r) for r in records] == [False, True, False]
    assert "not valid Unicode" in records[1]["error"]
    assert_user_error(infer(cli, model, "--file", path), "input 1", "not valid Unicode", code=1)


def test_undecodable_bytes_on_stdin_are_one_error_record_under_skip(model, tmp_path, monkeypatch, capsys):
    from tasktool.cli.app import main

    raw = b"good film\n\xff\xfe broken\nfine film\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8"))
    with pytest.raises(SystemExit) as exit_:
        main(["infer", "sentiment", "-", "--model", str(model), "--on-error", "skip", "--format", "jsonl"])
    captured = capsys.readouterr()
    assert exit_.value.code in (0, None), captured.err
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["id"] for r in records] == [0, 1, 2] and "error" in records[1]
    assert "error" not in records[0] and "error" not in records[2]


class _Allocator:
    """A predictor whose batches run out of memory (with the CPU allocator's words) when they hold
    the huge input, until it is alone; alone, it still does not fit."""

    def __init__(self, message):
        self.message, self.sizes = message, []

    def __call__(self, batch):
        self.sizes.append(len(batch))
        if "huge" in batch:
            raise RuntimeError(self.message) if self.message else MemoryError()
        return [{"label": p} for p in batch]


@pytest.mark.parametrize(
    "message",
    [
        "[enforce fail at alloc_cpu.cpp:118] data. DefaultCPUAllocator: not enough memory: "
        "you tried to allocate 123456789 bytes.",
        "DefaultCPUAllocator: can't allocate memory: you tried to allocate 123456789 bytes. Error code 12",
        "CUDA out of memory. Tried to allocate 2.00 GiB",
        None,  # MemoryError
    ],
)
def test_out_of_memory_halves_the_batch_then_isolates_the_item(message):
    from tasktool.engine import Engine, Item, Predictor

    allocator = _Allocator(message)

    class P(Predictor):
        def predict(self, batch):
            return allocator(batch)

    payloads = ["a", "b", "huge", "c", "d", "e", "f", "g"]
    records = list(
        Engine(P(), batch_size=8, on_error="skip").run([Item(i, p) for i, p in enumerate(payloads)])
    )
    assert [r["id"] for r in records] == list(range(8))
    assert "out of memory" in records[2]["error"]
    assert all(r["label"] == p for r, p in zip(records, payloads, strict=True) if p != "huge")
    assert allocator.sizes == [8, 4, 2, 2, 1, 1, 4]  # halves, down to the item alone


def test_an_unexpected_failure_of_one_item_is_its_record_but_a_broken_model_stops_the_run():
    from tasktool.engine import Engine, Item, Predictor

    class OneBad(Predictor):
        def predict(self, batch):
            if "bad" in batch:
                raise ValueError("cannot handle this one")
            return [{"label": p} for p in batch]

    items = [Item(i, p) for i, p in enumerate(["a", "bad", "c"])]
    records = list(Engine(OneBad(), batch_size=4, on_error="skip").run(items))
    assert records[1]["error"].startswith("ValueError: cannot handle this one")
    assert records[0]["label"] == "a" and records[2]["label"] == "c"

    class Broken(Predictor):
        def predict(self, batch):
            raise ValueError("weights are broken")

    with pytest.raises(ValueError, match="weights are broken"):
        list(Engine(Broken(), batch_size=4, on_error="skip").run(items))


def test_user_text_is_shown_literally_in_tables_never_as_markup(cli, model, capsys):
    texts = ["[bold]loud[/bold]", "[link=http://evil.example]click[/link]", "[/oops]"]
    result = infer(cli, model, *texts, "--format", "table")
    assert result.code == 0, result.err
    for text in texts:
        assert text in result.out
    from tasktool.cli.evaluate import show_metrics

    show_metrics({"[red]accuracy[/red]": 0.5}, "sentiment: [/x] on [b]data[/b].csv")
    shown = capsys.readouterr().out
    assert "[red]accuracy[/red]" in shown and "[/x]" in shown


# ---------------------------------------------------------------------------------------- messages


def test_evaluate_accepts_the_safety_flags_its_hints_name(cli, model, tmp_path):
    folder = _pickled_copy(model, tmp_path / "m")
    data = tmp_path / "test.csv"
    data.write_text("text,label\ngood,POS\nbad,NEG\n")
    assert_user_error(cli("evaluate", "sentiment", "--model", folder, "--data", data), "--allow-pickle")
    allowed = cli("evaluate", "sentiment", "--model", folder, "--data", data, "--allow-pickle")
    assert allowed.code == 0, allowed.err
    remote = cli("evaluate", "sentiment", "--model", model, "--data", data, "--trust-remote-code")
    assert remote.code == 0, remote.err


def test_finetune_hints_never_name_a_flag_finetune_does_not_accept(cli, model, tmp_path):
    folder = _pickled_copy(model, tmp_path / "m")
    data = tmp_path / "train.csv"
    data.write_text("text,label\n" + "".join(f"good {i},POS\nbad {i},NEG\n" for i in range(5)))
    result = cli("finetune", "sentiment", "--data", data, "--model", folder, "-o", tmp_path / "o", "--quiet")
    assert_user_error(result, "pickle weights", "safetensors", code=2)
    assert "--allow-pickle" not in result.err


def test_an_unexpected_error_names_a_debug_flag_that_works(cli, monkeypatch):
    import tasktool.api

    def boom(*args, **kwargs):
        raise RuntimeError("something broke")

    monkeypatch.setattr(tasktool.api, "evaluate", boom)
    result = cli("evaluate", "sentiment", "--data", "x.csv")
    assert_user_error(result, "RuntimeError: something broke", "tasktool --debug", code=1)


def test_evaluate_device_typo_is_a_usage_error(cli, model, tmp_path):
    data = tmp_path / "test.csv"
    data.write_text("text,label\ngood,POS\n")
    result = cli("evaluate", "sentiment", "--model", model, "--data", data, "--device", "tpu")
    assert_user_error(result, "--device", "cpu", code=2)


def test_a_corrupt_safetensors_file_is_named(cli, model, tmp_path):
    folder = tmp_path / "cut"
    shutil.copytree(model, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert_user_error(infer(cli, folder, "hi"), str(weights), "truncated", code=2)
    weights.write_bytes(b"\xff" * 64)
    assert_user_error(infer(cli, folder, "hi"), str(weights), "corrupt", code=2)


def test_ctrl_c_during_finetune_says_what_is_saved_and_exits_130(cli, model, tmp_path, monkeypatch):
    from tasktool.training import trainer

    data = tmp_path / "train.csv"
    data.write_text("text,label\n" + "".join(f"good {i},POS\nbad {i},NEG\n" for i in range(5)))

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.TaskTrainer, "load_examples", ctrl_c)  # the real SIGINT test is slow
    result = cli("finetune", "sentiment", "--data", data, "--model", model, "-o", tmp_path / "o", "--quiet")
    assert_user_error(result, "interrupted", "checkpoint", code=130)
    assert not Path(f"{tmp_path / 'o'}.lock").exists()


# ---------------------------------------------------------------------------------------- two processes


@pytest.mark.slow
def test_two_processes_on_one_output_one_runs_the_other_refuses_at_once(model, tmp_path):
    import subprocess
    import time

    inputs = write_texts(tmp_path / "in.txt", 3000)
    out = tmp_path / "out.jsonl"
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    cmd = [
        sys.executable,
        "-m",
        "tasktool",
        "infer",
        "sentiment",
        "--file",
        str(inputs),
        "--model",
        str(model),
    ]
    first = subprocess.Popen(
        [*cmd, "-o", str(out), "--batch-size", "2"], env=env, stderr=subprocess.PIPE, text=True
    )
    partial = Path(f"{out}.partial")
    start = time.time()
    while not (partial.exists() and partial.stat().st_size > 0):  # it holds the lock and is writing
        assert first.poll() is None, first.stderr.read()
        assert time.time() - start < 300, "the first run wrote nothing"
        time.sleep(0.05)
    began = time.time()
    second = subprocess.run([*cmd, "-o", str(out)], env=env, capture_output=True, text=True, timeout=300)
    took = time.time() - began
    assert second.returncode == 1, second.stderr
    assert f"being written by another tasktool run (pid {first.pid})" in second.stderr
    assert first.poll() is None and took < 60  # refused at once, not after waiting for the first
    assert first.wait(timeout=600) == 0, first.stderr.read()
    records = strict_records(out)
    assert [r["id"] for r in records] == list(range(3000))
    assert all(r["label"] in LABELS for r in records)
    assert not partial.exists() and not Path(f"{out}.lock").exists()


@pytest.mark.slow
def test_ctrl_c_in_a_real_finetune_prints_the_checkpoint_to_resume_and_exits_130(model, tmp_path):
    import signal
    import subprocess
    import time

    data = tmp_path / "train.csv"
    data.write_text("text,label\n" + "".join(f"good film {i},POS\ndull film {i},NEG\n" for i in range(40)))
    out = tmp_path / "o"
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    cmd = [
        sys.executable,
        "-m",
        "tasktool",
        "finetune",
        "sentiment",
        "--data",
        str(data),
        "--model",
        str(model),
    ]
    cmd += ["-o", str(out), "--quiet", "max_steps=100000", "save_steps=2", "batch_size=2", "warmup_ratio=0"]
    # a suite started in the background (a shell's `&`) hands its children SIGINT ignored, and Python
    # keeps an ignored SIGINT ignored: the child gets the default disposition, as from a terminal
    proc = subprocess.Popen(
        cmd,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # the test starts no threads
    )
    start = time.time()
    while not (out / "checkpoints" / "checkpoint-2" / "COMPLETE").exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() - start < 300, "no checkpoint was saved"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    last = [line for line in err.splitlines() if line.startswith("error:")]
    assert (
        len(last) == 1
        and "interrupted: the newest complete checkpoint is" in last[0]
        and "--resume" in last[0]
    )
    assert not (out / "config.json").exists() and not Path(f"{out}.lock").exists()
