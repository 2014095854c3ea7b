"""TrainingArguments from a recipe: precision, optimizer and logging chosen for the device."""

from __future__ import annotations

from pathlib import Path

from tasktool.errors import TaskToolError, nearest
from tasktool.runtime import cpu_has_native


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _has_tensorboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def precision_flags(name: str) -> dict:
    """'auto' is the fastest precision that trains correctly on this device: bf16 mixed precision on
    GPUs that have it (else fp16), and on CPUs with native bf16 matrix units (AMX / AVX512-BF16),
    where it trains faster than fp32 with the same loss (benchmarks/README.md); plain fp32 elsewhere."""
    import torch

    name = name.lower()
    if name not in ("auto", "fp32", "bf16", "fp16"):
        raise TaskToolError(f"unknown precision '{name}'", "use auto, fp32, bf16 or fp16")
    cuda = torch.cuda.is_available()
    if name == "auto":
        if not cuda:
            return {"bf16": True, "use_cpu": True} if cpu_has_native("bf16") else {}
        return {"bf16": True} if torch.cuda.is_bf16_supported() else {"fp16": True}
    if name == "fp16" and not cuda:
        raise TaskToolError("precision fp16 needs a CUDA GPU", "use precision=bf16, auto or fp32 on CPU")
    return {"bf16": name == "bf16", "fp16": name == "fp16", **({} if cuda else {"use_cpu": True})}


def optimizer_name(name: str) -> str:
    """'auto' is AdamW with torch's fused kernel (one pass over all parameters instead of a loop of
    small ops): the same update, in a fraction of the time. Fused AdamW exists on CPU and CUDA in
    torch >= 2.4; elsewhere it is plain AdamW."""
    import torch
    from transformers.training_args import OptimizerNames

    if name != "auto":
        valid = [o.value for o in OptimizerNames]
        if name not in valid:
            guess = nearest(name, valid)
            raise TaskToolError(
                f"unknown optimizer '{name}'",
                f"use auto or one of transformers' optim names, e.g. {guess[0] if guess else 'adamw_torch'}",
            )
        return name
    if torch.backends.mps.is_available() and not torch.cuda.is_available():
        return "adamw_torch"
    major, minor = (int(x) for x in torch.__version__.split(".")[:2])
    return "adamw_torch_fused" if (major, minor) >= (2, 4) else "adamw_torch"


def scheduler_name(name: str) -> str:
    """The recipe's lr_scheduler, checked against transformers' names (a usage error, not a raw
    ValueError from TrainingArguments)."""
    from transformers.trainer_utils import SchedulerType

    valid = [s.value for s in SchedulerType]
    if name not in valid:
        guess = nearest(name, valid)
        raise TaskToolError(
            f"unknown lr_scheduler '{name}'",
            f"{f'did you mean {guess[0]}? ' if guess else ''}use one of {', '.join(valid)}",
        )
    return name


def check_recipe(recipe: dict) -> None:
    """The recipe's named choices (precision, optimizer, lr_scheduler), checked before any data or
    model is read, so a typo is a usage error in the first second rather than after loading."""
    precision_flags(recipe.get("precision") or "auto")
    optimizer_name(recipe.get("optimizer") or "auto")
    scheduler_name(recipe.get("lr_scheduler") or "linear")


def training_arguments(recipe: dict, ckpt_dir: Path, log_dir: Path, has_eval: bool, **extra):
    """The recipe as transformers' TrainingArguments (the one place recipe keys meet the Trainer)."""
    from transformers import TrainingArguments

    r = recipe
    precision = precision_flags(r.get("precision") or "auto")
    if not 0 <= float(r.get("warmup_ratio") or 0.0) < 1:
        raise TaskToolError(
            f"warmup_ratio must be in [0, 1), got {r.get('warmup_ratio')}", "e.g. warmup_ratio=0.1"
        )
    eval_steps, save_steps = r.get("eval_steps") or 0, r.get("save_steps") or 0
    if has_eval and save_steps and not eval_steps and r.get("load_best_model") is not False:
        eval_steps = save_steps  # the best checkpoint is chosen among evaluated ones: score each one
        r = {**r, "eval_steps": eval_steps}
    report = report_to(r.get("report_to"), log_dir)
    best = best_checkpoint(r, has_eval, extra.pop("best_metric", "loss"), extra.pop("metrics", ("loss",)))
    return TrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=float(r.get("epochs") or 1.0),
        max_steps=int(r.get("max_steps") or -1) if r.get("max_steps") else -1,
        learning_rate=float(r.get("lr") or 5e-5),
        per_device_train_batch_size=int(r.get("batch_size") or 8),
        per_device_eval_batch_size=int(r.get("eval_batch_size") or r.get("batch_size") or 8),
        gradient_accumulation_steps=int(r.get("gradient_accumulation_steps") or 1),
        weight_decay=float(r.get("weight_decay") or 0.0),
        warmup_steps=float(r.get("warmup_ratio") or 0.0),
        lr_scheduler_type=scheduler_name(r.get("lr_scheduler") or "linear"),
        max_grad_norm=float(r.get("max_grad_norm") or 1.0),
        seed=int(r.get("seed") or 42),
        eval_strategy=("steps" if eval_steps else "epoch") if has_eval else "no",
        eval_steps=eval_steps or None,
        **{"save_strategy": "steps" if save_steps else "epoch", "save_steps": save_steps or 500, **best},
        save_total_limit=r.get("save_total_limit") or None,
        logging_strategy="steps",
        logging_steps=int(r.get("logging_steps") or 10),
        logging_first_step=True,
        report_to=report,
        disable_tqdm=True,
        train_sampling_strategy="group_by_length" if r.get("group_by_length") else "random",
        optim=optimizer_name(r.get("optimizer") or "auto"),
        dataloader_num_workers=0,
        dataloader_pin_memory=_cuda(),
        remove_unused_columns=True,
        save_only_model=False,
        **precision,
        **extra,
    )


TRACKERS = ("none", "tensorboard", "mlflow", "wandb")
TRACKER_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


def report_to(value: str | None, log_dir: Path) -> str:
    """The experiment tracker of --report-to (default none), through the Trainer's own integrations; a
    tracker whose package is missing is a one-line error before any model loads."""
    import importlib.util
    import os

    name = (value or "none").strip().lower()
    if name not in TRACKERS:
        guess = nearest(name, TRACKERS)
        raise TaskToolError(
            f"unknown --report-to '{value}'",
            (f"did you mean '{guess[0]}'? " if guess else "") + f"use one of {', '.join(TRACKERS)}",
        )
    if name == "none":
        return "none"
    if importlib.util.find_spec(TRACKER_PACKAGES[name]) is None:
        raise TaskToolError(
            f"--report-to {name}: the '{TRACKER_PACKAGES[name]}' package is not installed",
            f"pip install 'tasktool[trackers]' (or pip install {TRACKER_PACKAGES[name]}), or --report-to none",
        )
    if name == "tensorboard":
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(log_dir)  # transformers 5 reads it from here
    return name


def best_checkpoint(recipe: dict, has_eval: bool, default_metric: str, metrics) -> dict:
    """TrainingArguments that keep the best checkpoint by the task's metric (or eval loss) and load it at
    the end: checkpoints are written when the model is evaluated (each epoch, or every eval_steps), as
    load_best_model_at_end requires. Without eval data, or with load_best_model=false: {}."""
    r = recipe
    if not has_eval or r.get("load_best_model") is False:
        if r.get("early_stopping_patience"):
            raise TaskToolError(
                "early_stopping_patience needs evaluation during training"
                + ("" if has_eval else " (there is no evaluation data)")
                + (" and load_best_model" if has_eval else ""),
                "drop early_stopping_patience, or keep load_best_model=true",
            )
        return {}
    name = str(r.get("metric_for_best") or default_metric).strip()
    short = name[5:] if name.startswith("eval_") else name
    if short not in metrics:
        raise TaskToolError(
            f"metric_for_best '{name}' is not measured while this task trains",
            f"use one of {', '.join(metrics)}",
        )
    if r.get("early_stopping_patience") is not None and int(r["early_stopping_patience"]) < 0:
        raise TaskToolError(
            "early_stopping_patience must be 0 (off) or more", "e.g. early_stopping_patience=3"
        )
    eval_steps, save_steps = int(r.get("eval_steps") or 0), int(r.get("save_steps") or 0)
    if eval_steps:
        # a checkpoint wherever the model is scored: save_steps must be a multiple of eval_steps
        save = {
            "save_strategy": "steps",
            "save_steps": save_steps if save_steps and save_steps % eval_steps == 0 else eval_steps,
        }
    else:
        save = {"save_strategy": "epoch"}
    return {
        **save,
        "load_best_model_at_end": True,
        "metric_for_best_model": short,
        "greater_is_better": not short.endswith("loss"),
    }


def early_stopping(recipe: dict, args):
    """transformers' EarlyStoppingCallback when early_stopping_patience > 0 (and the best model is kept)."""
    patience = int(recipe.get("early_stopping_patience") or 0)
    if patience <= 0 or not getattr(args, "load_best_model_at_end", False):
        return None
    from transformers import EarlyStoppingCallback

    return EarlyStoppingCallback(
        early_stopping_patience=patience,
        early_stopping_threshold=float(recipe.get("early_stopping_threshold") or 0.0),
    )
