"""Checkpoints and the final model folder are written atomically; --resume uses the newest complete one."""

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

pytestmark = pytest.mark.slow  # fine-tuning runs / several processes: `make test-fast` leaves these out

ROOT = Path(__file__).resolve().parent.parent


def _rows(n: int, seed: int) -> list[dict]:
    from tasktool.tiny.text import WORDS

    rng = random.Random(seed)
    words = [w for w in WORDS if w != "wonderful"]
    rows = []
    for i in range(n):
        ws = rng.choices(words, k=rng.randint(4, 8))
        if i % 2:
            ws.insert(rng.randint(0, len(ws)), "wonderful")
        rows.append({"text": " ".join(ws), "label": "yes" if i % 2 else "no"})
    return rows


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt-data")
    paths = []
    for name, n, seed in (("train.jsonl", 48, 0), ("dev.jsonl", 8, 1)):
        path = folder / name
        path.write_text("".join(json.dumps(r) + "\n" for r in _rows(n, seed)))
        paths.append(path)
    return paths


def _args(data, base, out) -> list[str]:
    return [
        "finetune",
        "sentiment",
        "--data",
        str(data[0]),
        "--eval-data",
        str(data[1]),
        "--model",
        str(base),
        "--output-dir",
        str(out),
        "--max-steps",
        "12",
        "--batch-size",
        "4",
        "--lr",
        "1e-3",
        "--quiet",
        "save_steps=4",
        "logging_steps=4",
        "warmup_ratio=0",
        "group_by_length=false",
    ]


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_kill_during_a_checkpoint_save_then_resume_continues_from_the_last_complete_one(
    cli, tiny, data, tmp_path
):
    base = tiny("text-classification", labels=["no", "yes"])
    full = cli(*_args(data, base, tmp_path / "full"))
    assert full.code == 0, full.err
    full_train = json.loads((tmp_path / "full" / "metrics.json").read_text())["train"]
    assert full_train["global_step"] == 12

    # a real SIGKILL from outside, while checkpoint-8 is half written (weights on disk, optimizer not)
    out = tmp_path / "killed"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TASKTOOL_TEST_HANG_DURING_SAVE": "8",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tasktool", *_args(data, base, out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    hanging = out / "checkpoints" / "checkpoint-8" / ".hanging"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None and not hanging.exists():
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
    assert hanging.exists(), err.decode()[-2000:]
    ckpts = out / "checkpoints"
    assert (ckpts / "checkpoint-4" / "COMPLETE").is_file()
    assert (ckpts / "checkpoint-8" / "model.safetensors").is_file()
    assert not (ckpts / "checkpoint-8" / "COMPLETE").exists()
    assert not (out / "config.json").exists() and not (out / "metrics.json").exists()

    # a newer folder that even has trainer_state.json, but truncated weights and no marker
    fake = ckpts / "checkpoint-10"
    fake.mkdir()
    (fake / "trainer_state.json").write_text((ckpts / "checkpoint-4" / "trainer_state.json").read_text())
    (fake / "model.safetensors").write_bytes(
        (ckpts / "checkpoint-4" / "model.safetensors").read_bytes()[:100]
    )

    resumed = cli(*[a for a in _args(data, base, out) if a != "--quiet"], "--resume")  # -q hides warnings
    assert resumed.code == 0, resumed.err
    for name in ("checkpoint-8", "checkpoint-10"):
        assert f"skipping {name}: incomplete" in resumed.err, resumed.err
    assert "resuming from checkpoint-4" in resumed.err
    assert "Traceback" not in resumed.err
    train = json.loads((out / "metrics.json").read_text())["train"]
    assert train["global_step"] == full_train["global_step"] == 12
    assert train["resumed_from_step"] == 4
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert {"event": "resume", "step": 4} in log
    # the resumed run ends with the weights of the uninterrupted one (same data order, RNG restored)
    import torch

    a, b = _weights(tmp_path / "full"), _weights(out)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    assert not (out / "checkpoints").exists()  # removed once the model is published
    assert not list(tmp_path.glob(".*"))  # no staging folder left behind


def test_resume_with_only_a_partial_checkpoint_refuses_and_names_it(cli, tiny, data, tmp_path):
    from conftest import assert_user_error

    out = tmp_path / "out"
    partial = out / "checkpoints" / "checkpoint-4"
    partial.mkdir(parents=True)
    (partial / "model.safetensors").write_bytes(b"\0" * 10)
    result = cli(*_args(data, tiny("text-classification", labels=["no", "yes"]), out), "--resume")
    assert_user_error(result, "no checkpoint", "checkpoint-4", "incomplete", code=2)


def _checkpoint(folder: Path, step: int, complete: bool) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"x")
    if complete:
        (path / "COMPLETE").write_text("{}")
    return path


def test_newest_complete_checkpoint_wins_over_newer_partial_ones(tmp_path):
    from tasktool.training.checkpoints import checkpoints, last_checkpoint

    for step, complete in ((5, True), (10, True), (15, False), (20, False)):
        _checkpoint(tmp_path, step, complete)
    done, partial = checkpoints(tmp_path)
    assert [p.name for p in done] == ["checkpoint-5", "checkpoint-10"]
    assert [p.name for p in partial] == ["checkpoint-15", "checkpoint-20"]
    assert last_checkpoint(tmp_path).name == "checkpoint-10"
    assert last_checkpoint(tmp_path / "missing") is None


def test_rotation_counts_only_complete_checkpoints_and_keeps_the_newest(tmp_path):
    from tasktool.training.checkpoints import rotate

    for step, complete in ((1, True), (2, True), (3, True), (4, False)):
        _checkpoint(tmp_path, step, complete)
    rotate(tmp_path, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-3", "checkpoint-4"]
    rotate(tmp_path, 2, keep=str(tmp_path / "checkpoint-3"))
    assert (tmp_path / "checkpoint-3" / "COMPLETE").is_file()


def test_checkpoints_written_by_the_trainer_carry_the_marker_and_rotation_waits_for_it(tiny, data, tmp_path):
    """save_total_limit=1 with keep_checkpoints: the one kept is the newest, and it is marked complete."""
    from tasktool.io.readers import Source
    from tasktool.recipes import resolve_recipe
    from tasktool.tasks.registry import resolve

    spec = resolve("sentiment")
    recipe = resolve_recipe(
        spec.name,
        overrides=[
            "max_steps=8",
            "save_steps=2",
            "save_total_limit=1",
            "load_best_model=false",  # the newest checkpoint is the one kept, not the best one
            "keep_checkpoints=true",
            "batch_size=8",
            "warmup_ratio=0",
        ],
    )
    trainer = spec.load_trainer()(spec, recipe, {}, quiet=True)
    out = tmp_path / "m"
    trainer.run(Source(str(data[0])), Source(str(data[1])), out, model=str(tiny("text-classification")))
    kept = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert kept == ["checkpoint-8"]
    marker = json.loads((out / "checkpoints" / "checkpoint-8" / "COMPLETE").read_text())
    assert marker["step"] == 8
    assert (out / "config.json").is_file() and (out / "metrics.json").is_file()


def test_publish_swaps_the_whole_folder_and_keeps_the_users_files(tmp_path):
    from tasktool.training.artifacts import publish, staging_dir

    out = tmp_path / "model"
    (out / "checkpoints" / "checkpoint-3").mkdir(parents=True)
    (out / "runs").mkdir()
    (out / "train_log.jsonl").write_text("old\n")
    (out / "notes.txt").write_text("mine")
    staging = staging_dir(out)
    assert staging.parent == tmp_path and staging.name.startswith(".")
    (staging / "config.json").write_text("{}")
    (staging / "train_log.jsonl").write_text("new\n")
    publish(staging, out, drop=("checkpoints",))
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "notes.txt", "runs", "train_log.jsonl"]
    assert (out / "train_log.jsonl").read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_failure_before_publishing_leaves_no_model_files_in_the_output_folder(
    tiny, data, tmp_path, monkeypatch
):
    """A run that dies while saving/evaluating the final model leaves the folder as training left it."""
    from tasktool.io.readers import Source
    from tasktool.recipes import resolve_recipe
    from tasktool.tasks.registry import resolve

    spec = resolve("sentiment")
    recipe = resolve_recipe(spec.name, overrides=["max_steps=4", "save_steps=2", "batch_size=8"])
    trainer = spec.load_trainer()(spec, recipe, {}, quiet=True)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer.evaluator, "evaluate", boom)
    out = tmp_path / "m"
    with pytest.raises(KeyboardInterrupt):
        trainer.run(Source(str(data[0])), Source(str(data[1])), out, model=str(tiny("text-classification")))
    assert not (out / "config.json").exists() and not (out / "metrics.json").exists()
    assert (out / "checkpoints" / "checkpoint-4" / "COMPLETE").is_file()  # --resume can continue
