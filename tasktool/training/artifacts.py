"""What a fine-tuning run leaves behind: model files, metrics.json, a loss curve, a model card and the
resolved recipe, all written into a hidden sibling folder that replaces the output folder in one rename."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


def staging_dir(out: Path) -> Path:
    """A fresh hidden sibling of `out` (same filesystem, so it can be renamed into place)."""
    staging = out.parent / f".{out.name}.saving"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def save_model(trainer, tokenizer, folder: Path) -> None:
    """Model + tokenizer/processor files, without the Trainer's pickled arguments."""
    trainer.save_model(str(folder))
    tokenizer.save_pretrained(str(folder))
    (folder / "training_args.bin").unlink(missing_ok=True)


def publish(staging: Path, out: Path, drop: tuple[str, ...] = ()) -> None:
    """Swap the finished `staging` folder in for `out` in one rename, then carry over what `out` held.

    On Linux renameat2(RENAME_EXCHANGE) swaps the two folders atomically: `out` is either the old
    folder (checkpoints, log) or the complete new one, never a mix. Elsewhere two renames do it,
    with a moment in which `out` is absent. Entries of the old folder the new one lacks (checkpoints
    unless in `drop`, tensorboard runs, the user's own files) are moved into the new folder.
    """
    for path in staging.rglob("*"):
        if path.is_file():
            fsync(path)
    fsync(staging)
    if out.exists():
        if not _exchange(staging, out):
            aside = out.parent / f".{out.name}.old"
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(out, aside)
            os.replace(staging, out)
            staging = aside
        old = staging  # after the swap the hidden name holds the previous folder
        for entry in sorted(old.iterdir()):
            if entry.name not in drop and not (out / entry.name).exists():
                os.replace(entry, out / entry.name)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)
    fsync(out.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two folders (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a folder
        pass
    finally:
        os.close(fd)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_log(log_path: Path) -> list[dict]:
    if not log_path.exists():
        return []
    rows = []
    for line in log_path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def write_all(out: Path, recipe: dict, summary: dict, log_path: Path, data_name: str) -> None:
    from tasktool.training.recipe import dump

    log = read_log(log_path)
    if log_path.parent != out and log_path.exists():
        shutil.copyfile(log_path, out / log_path.name)
    _atomic_text(out / "recipe.yaml", dump(recipe))
    plot_loss(log, out / "loss_curve.png")
    _atomic_text(out / "README.md", model_card(recipe, summary, data_name))
    _atomic_text(out / "metrics.json", json.dumps(summary, indent=2) + "\n")


def _series(log: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = {r["step"]: float(r[key]) for r in log if key in r and isinstance(r.get(key), (int, float))}
    steps = sorted(points)
    return steps, [points[s] for s in steps]


def plot_loss(log: list[dict], path: Path) -> None:
    """Training (and eval) loss against step, drawn with matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = _series(log, "loss")
    evals = _series(log, "eval_loss")
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if train[0]:
        ax.plot(*train, label="train loss")
    if evals[0]:
        ax.plot(*evals, "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def append_to_card(folder: Path, lines: list[str]) -> None:
    """Sections a task adds to the model card (e.g. its confusion matrix picture)."""
    card = folder / "README.md"
    if card.exists():
        _atomic_text(card, card.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")


def _speed_patches(train: dict) -> str:
    """tasktool.accel's patches the run trained with, and why the others stayed off."""
    names = ", ".join(train.get("speed_patches") or []) or "none"
    off = "; ".join(f"{name}: {why}" for name, why in (train.get("speed_patches_off") or {}).items())
    return names + (f" (off: {off})" if off else "")


def model_card(recipe: dict, summary: dict, data_name: str) -> str:
    eval_metrics = summary.get("eval", {})
    train = summary.get("train", {})
    keys = (
        "epochs",
        "max_steps",
        "lr",
        "batch_size",
        "gradient_accumulation_steps",
        "weight_decay",
        "warmup_ratio",
        "lr_scheduler",
        "max_length",
        "seed",
        "precision",
        "group_by_length",
        "lora",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "merge",
    )
    hyper = "\n".join(f"| {k} | {recipe[k]} |" for k in keys if recipe.get(k) is not None)
    metric_rows = "\n".join(
        f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in eval_metrics.items()
    )
    task = summary.get("task", recipe.get("task"))
    adapter = bool(recipe.get("lora")) and not recipe.get("merge")
    trainable = ""
    if train.get("trainable_parameters") is not None:
        share = 100 * train["trainable_parameters"] / max(1, train.get("total_parameters") or 1)
        trainable = (
            f"\n- **Trainable parameters:** {train['trainable_parameters']:,} of "
            f"{train.get('total_parameters', 0):,} ({share:.2f}%), LoRA r={train.get('lora_r')} "
            f"alpha={train.get('lora_alpha')} on {', '.join(train.get('lora_targets') or [])}"
            + (" (this folder is the adapter: `tasktool merge` writes a plain model)" if adapter else "")
        )
    return f"""---
library_name: {"peft" if adapter else "transformers"}
pipeline_tag: {task}
base_model: {summary.get("base_model")}
tags: [tasktool]
---

# {task} model fine-tuned with tasktool

- **Task:** {task}
- **Base model:** `{summary.get("base_model")}`
- **Training data:** `{data_name}` ({train.get("train_examples")} examples)
- **Evaluation data:** `{summary.get("eval_data")}` ({train.get("eval_examples")} examples)
- **Optimizer steps:** {train.get("global_step")} (final training loss {train.get("train_loss", float("nan")):.4f}){trainable}
- **Speed patches:** {_speed_patches(train)}

## Evaluation

| metric | value |
|---|---|
{metric_rows}

## Hyper-parameters

| key | value |
|---|---|
{hyper}

The full resolved recipe is in `recipe.yaml`; the loss per step in `train_log.jsonl` and `loss_curve.png`.

## Use

```bash
tasktool infer {task} "your input" --model PATH_TO_THIS_FOLDER
tasktool evaluate {task} --model PATH_TO_THIS_FOLDER --data test.jsonl
```
"""
