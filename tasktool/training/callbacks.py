"""Trainer callbacks: one JSON line per log event, and a progress bar (or plain lines) for people."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def quiet_trainer(trainer) -> None:
    """Our callbacks report progress; drop transformers' own printing ones."""
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_callback import ProgressCallback as HFProgress

    for cb in (PrinterCallback, HFProgress):
        trainer.remove_callback(cb)


def _callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class JsonlLogCallback(_callback_base()):
    """Every log event (loss, lr, eval_loss) as one JSON line; appended across --resume."""

    def __init__(self, path: Path, resumed_from: int | None = None, opening: dict | None = None):
        self.path = path
        self.resumed_from = resumed_from
        self.opening = opening  # a record written as training begins (the speed patches)
        self.start = time.time()

    def on_train_begin(self, args, state, control, **kwargs):
        if self.resumed_from and state.is_world_process_zero:
            self._write({"event": "resume", "step": self.resumed_from})
        if self.opening and state.is_world_process_zero:
            self._write(self.opening)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:  # one log, however many processes train
            return
        record = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
        record.update({k: v for k, v in (logs or {}).items() if isinstance(v, (int, float, str))})
        record["elapsed_s"] = round(time.time() - self.start, 2)
        self._write(record)

    def _write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


class ProgressCallback(_callback_base()):
    """A rich progress bar (steps, loss, eta) on a terminal; plain log lines otherwise; nothing with --quiet."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.progress = None
        self.task = None
        self.loss = None

    def on_train_begin(self, args, state, control, **kwargs):
        if self.quiet or not sys.stderr.isatty() or not state.is_world_process_zero:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from tasktool.console import err_console

        self.progress = Progress(
            TextColumn("training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=err_console(),
            transient=True,
        )
        self.task = self.progress.add_task(
            "train", total=state.max_steps, completed=state.global_step, loss="-"
        )
        self.progress.start()

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if self.quiet or not state.is_world_process_zero:
            return
        parts = [
            f"{k}={_fmt(logs[k])}"
            for k in ("loss", "eval_loss", "eval_accuracy", "learning_rate")
            if k in logs
        ]
        if not parts:
            return
        if self.progress is not None:
            if "loss" in logs:
                self.progress.update(self.task, loss=_fmt(logs["loss"]))
            if "eval_loss" in logs:
                self.progress.console.print(
                    f"  step {state.global_step}/{state.max_steps}: " + " ".join(parts)
                )
        else:
            from tasktool.console import info

            info(f"  step {state.global_step}/{state.max_steps}: " + " ".join(parts))

    def stop(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
