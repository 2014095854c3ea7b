"""The fine-tuning core every task trainer builds on.

`TaskTrainer.run()` is the whole job: read and check the data, hold out an eval split, pick the
base model (the bundled MiniLM when the Hub is offline), tokenize, train with transformers'
Trainer (dynamic padding, length-grouped batches, checkpoints, resume), save the final model
atomically, then score it with the SAME engine and predictor `tasktool infer` uses, so
`tasktool evaluate` on the saved folder reproduces metrics.json.

A task module subclasses TaskTrainer and fills in the hooks marked "task hook"; the seq2seq and
language-model trainers override `trainer_class`/`training_arguments` as well.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from tasktool.errors import TaskToolError, nearest
from tasktool.runtime import cpu_has_native
from tasktool.training import data as D
from tasktool.training.artifacts import fsync

CHECKPOINTS = "checkpoints"
COMPLETE = "COMPLETE"  # written into a checkpoint folder after everything else in it is on disk
# test-only: `N` makes the run stop (sleep) in the middle of saving checkpoint-N, after the weights and
# before the optimizer state, so a test can SIGKILL it there; it touches checkpoint-N/.hanging first
HANG_DURING_SAVE = "TASKTOOL_TEST_HANG_DURING_SAVE"


class TaskTrainer:
    """Shared orchestration; subclasses describe their columns, examples, features and metric."""

    # role -> (flag, default column names, required)
    roles: dict[str, tuple[str, tuple[str, ...], bool]] = {}
    conll = False  # accept CoNLL token files
    loss_units: str | None = None  # what the loss is a mean over (micro_batches.UNITS); None: whole batches
    eval_file_name = "eval.jsonl"

    def __init__(self, spec, recipe: dict, columns: dict[str, str | None] | None = None, quiet: bool = False):
        self.spec = spec
        self.recipe = recipe
        self.columns = {k: v for k, v in (columns or {}).items() if v}
        self.quiet = quiet
        self.labels: list[str] | None = None

    # ------------------------------------------------------------------ task hooks
    def example(self, row: dict, cols: dict[str, str | None], where: str) -> dict:
        """Task hook: one raw row -> a checked, normalised example (raise naming `where`)."""
        raise NotImplementedError

    def label_set(self, examples: list[dict]) -> list[str] | None:
        """Task hook: the labels to learn (None for tasks without a label set)."""
        return None

    def check_labels(self, examples: list[dict], known: dict[str, int], source_name: str) -> list[dict]:
        """Task hook: refuse eval labels the model never saw, naming the row."""
        return examples

    def model_kwargs(self) -> dict:
        if not self.labels:
            return {}
        return {
            "num_labels": len(self.labels),
            "id2label": dict(enumerate(self.labels)),
            "label2id": {label: i for i, label in enumerate(self.labels)},
            "ignore_mismatched_sizes": True,
        }

    def features(self, examples: list[dict], tokenizer, train: bool) -> list[dict]:
        """Task hook: examples -> tokenized features with labels."""
        raise NotImplementedError

    def collator(self, tokenizer):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=None)

    def evaluate(
        self,
        model_dir: str,
        examples: list[dict],
        batch_size: int = 32,
        device: str = "auto",
        max_length: int | None = None,
    ) -> tuple[dict, list[dict]]:
        """Task hook: (metrics, per-example predictions) through tasktool.engine + the task's predictor."""
        raise NotImplementedError

    def eval_row(self, example: dict) -> dict:
        """How an example is written to eval.jsonl (readable back by `tasktool evaluate`)."""
        return {k: v for k, v in example.items() if not k.startswith("_")}

    # ------------------------------------------------------------------ data
    def read(self, source: D.Source) -> list[dict]:
        rows = D.load_rows(source, conll=self.conll)
        cols = self.resolve_columns(rows[0])
        examples = []
        for n, row in enumerate(rows):
            where = D.row_label(n, source)
            examples.append({**self.example(row, cols, where), "_where": where})
        return examples

    def resolve_columns(self, first: dict) -> dict[str, str | None]:
        return {
            role: D.pick(first, self.columns.get(role), defaults, role, flag, required)
            for role, (flag, defaults, required) in self.roles.items()
        }

    def load_examples(
        self, data: D.Source, eval_data: D.Source | None
    ) -> tuple[list[dict], list[dict], bool]:
        train = self.read(data)
        held_out = eval_data is None
        if held_out:
            train, evals = D.holdout(
                train, self.recipe.get("eval_fraction") or 0.2, self.recipe.get("seed") or 42
            )
        else:
            evals = self.read(eval_data)
        if self.recipe.get("max_train_samples"):
            train = train[: self.recipe["max_train_samples"]]
        if self.recipe.get("max_eval_samples"):
            evals = evals[: self.recipe["max_eval_samples"]]
        # a split we made ourselves must not lose a rare label: take the label set from all the rows
        self.labels = self.label_set(train + evals if held_out else train)
        if self.labels is not None and not held_out:
            known = {label: i for i, label in enumerate(self.labels)}
            evals = self.check_labels(evals, known, eval_data.name if eval_data else "the held-out split")
        return train, evals, held_out

    # ------------------------------------------------------------------ model
    def base_model(self, explicit: str | None) -> str:
        """--model, else the recipe's checkpoint; offline, the bundled MiniLM for encoder tasks."""
        from tasktool import runtime

        ref = explicit or self.recipe.get("model") or self.spec.default_model
        if explicit:
            self.recipe["model"] = ref
            return runtime.check_model_ref(ref)
        try:
            runtime.load_config(runtime.check_model_ref(ref), self.recipe.get("revision"))
            return ref
        except TaskToolError:
            base = runtime.offline_base_model() if self.spec.offline_base else None
            if not base:
                raise
            from tasktool.console import info

            info(f"'{ref}' cannot be loaded (Hub unreachable): using the bundled MiniLM base model {base}")
            self.recipe["model"] = base
            self.recipe.pop("revision", None)
            return base

    def load_model(self, ref: str):
        from tasktool import runtime

        return runtime.load_model(
            self.spec,
            ref,
            revision=self.recipe.get("revision"),
            device="cpu",
            dtype="float32",
            for_training=True,
            **self.model_kwargs(),
        )

    # ------------------------------------------------------------------ training
    def trainer_class(self):
        from transformers import Trainer

        return Trainer

    def training_arguments(self, ckpt_dir: Path, log_dir: Path, has_eval: bool, **extra):
        from transformers import TrainingArguments

        r = self.recipe
        precision = precision_flags(r.get("precision") or "auto")
        if not 0 <= float(r.get("warmup_ratio") or 0.0) < 1:
            raise TaskToolError(
                f"warmup_ratio must be in [0, 1), got {r.get('warmup_ratio')}", "e.g. warmup_ratio=0.1"
            )
        eval_steps, save_steps = r.get("eval_steps") or 0, r.get("save_steps") or 0
        report = "tensorboard" if _has_tensorboard() else "none"
        if report == "tensorboard":
            import os

            os.environ["TENSORBOARD_LOGGING_DIR"] = str(log_dir)  # transformers 5 reads it from here
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
            lr_scheduler_type=r.get("lr_scheduler") or "linear",
            max_grad_norm=float(r.get("max_grad_norm") or 1.0),
            seed=int(r.get("seed") or 42),
            eval_strategy=("steps" if eval_steps else "epoch") if has_eval else "no",
            eval_steps=eval_steps or None,
            save_strategy="steps" if save_steps else "epoch",
            save_steps=save_steps or 500,
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

    def run(
        self,
        data: D.Source,
        eval_data: D.Source | None,
        output_dir: str | Path,
        model: str | None = None,
        resume: bool = False,
    ) -> dict:
        from tasktool import accel
        from tasktool.training import artifacts

        out = Path(output_dir).expanduser()
        if out.is_symlink():  # the final swap renames folders: work on the real one, keep the link
            out = out.resolve()
        if out.exists() and not out.is_dir():
            raise TaskToolError(
                f"--output-dir '{out}' is a file, not a folder", "choose a folder name for the model"
            )
        ckpt_dir = out / CHECKPOINTS
        last, partial = pick_checkpoint(ckpt_dir) if resume else (None, [])
        if resume and last is None:
            names = ", ".join(p.name for p in partial)
            found = f" is complete ({names}: incomplete, the run stopped while saving it)" if partial else ""
            raise TaskToolError(
                f"--resume: no checkpoint in '{ckpt_dir}'{found}",
                "start again without --resume: remove the folder or choose another --output-dir",
            )
        if not resume and out.exists() and any(out.iterdir()):
            if (out / "config.json").exists() or ckpt_dir.exists():
                raise TaskToolError(
                    f"output folder '{out}' already holds a model or checkpoints",
                    "pass --resume to continue it, or choose another --output-dir",
                )
        train_ex, eval_ex, held_out = self.load_examples(data, eval_data)
        base = self.base_model(model)
        self._say(
            f"[bold]1/4[/bold] data: {len(train_ex)} training and {len(eval_ex)} evaluation examples"
            + (
                f" (held out {self.recipe.get('eval_fraction')} with seed {self.recipe.get('seed')})"
                if held_out
                else ""
            )
        )
        tokenizer = self._tokenizer(base)
        from transformers import set_seed

        set_seed(int(self.recipe.get("seed") or 42))  # the new head's initialisation is part of the run
        hf_model = self.load_model(base)
        train_features = self.features(train_ex, tokenizer, train=True)
        eval_features = self.features(eval_ex, tokenizer, train=False) if eval_ex else None
        if not train_features:
            raise TaskToolError("no training features could be built from the data", "check the data file")
        out.mkdir(parents=True, exist_ok=True)
        log_path = out / "train_log.jsonl"
        if not resume:
            log_path.unlink(missing_ok=True)  # several processes may get here at once
        args = self.training_arguments(ckpt_dir, out / "runs", has_eval=bool(eval_features))
        applied = accel.apply_for_training(
            hf_model,
            device_type=args.device.type,
            recipe=self.recipe,
            loss_units=self.loss_units,
            batch_size=args.per_device_train_batch_size,
        )
        callbacks = [JsonlLogCallback(log_path, _step_of(last) if last else None, opening=applied.record())]
        progress = ProgressCallback(quiet=self.quiet)
        callbacks.append(progress)
        for folder in partial:  # the Trainer will write these steps again, from scratch
            shutil.rmtree(folder, ignore_errors=True)
        trainer = atomic_checkpoints(applied.trainer_class(self.trainer_class()))(
            model=hf_model,
            args=args,
            train_dataset=_dataset(train_features),
            eval_dataset=_dataset(eval_features) if eval_features else None,
            processing_class=tokenizer,
            data_collator=self.collator(tokenizer),
            callbacks=callbacks,
        )
        _quiet_trainer(trainer)
        self._say(
            f"[bold]2/4[/bold] training {self.spec.name} from {base} on {args.device.type}"
            + (f", resuming from {last.name}" if last else "")
        )
        self._say(applied.line())
        try:
            result = trainer.train(resume_from_checkpoint=str(last) if last else None)
        finally:
            progress.stop()
            applied.remove()
        self._say(f"[bold]3/4[/bold] saving the model to {out}")
        # everything goes into a hidden sibling folder first, which then replaces `out` in one rename:
        # a folder that has config.json and metrics.json is a whole model, never half of one
        if not trainer.is_world_process_zero():
            # several processes (accelerate launch / torchrun): FSDP/DeepSpeed gather the weights on
            # every process, the main one writes them, then evaluates and publishes alone
            trainer.save_model()
            sys.exit(0)
        staging = artifacts.staging_dir(out)
        artifacts.save_model(trainer, tokenizer, staging)
        self._say("[bold]4/4[/bold] evaluating the saved model")
        metrics, _ = self.evaluate(
            str(staging),
            eval_ex,
            batch_size=int(self.recipe.get("eval_batch_size") or 32),
            max_length=self.recipe.get("max_length"),
        )
        if held_out:
            with open(staging / self.eval_file_name, "w", encoding="utf-8") as fh:
                for ex in eval_ex:
                    fh.write(json.dumps(self.eval_row(ex), ensure_ascii=False) + "\n")
        summary = {
            "task": self.spec.name,
            "base_model": base,
            "eval": metrics,
            "train": {
                "global_step": int(result.global_step),
                "train_loss": float(result.training_loss),
                "train_runtime_s": round(float(result.metrics.get("train_runtime", 0.0)), 2),
                "train_examples": len(train_ex),
                "eval_examples": len(eval_ex),
                "resumed_from_step": _step_of(last) if last else None,
                "speed_patches": applied.applied,
                "speed_patches_off": applied.off,
            },
            "eval_data": self.eval_file_name if held_out else (eval_data.name if eval_data else None),
        }
        artifacts.write_all(staging, self.recipe, summary, log_path, data_name=data.name)
        self.finish(staging, summary)
        artifacts.publish(staging, out, drop=() if self.recipe.get("keep_checkpoints") else (CHECKPOINTS,))
        return summary

    def finish(self, folder: Path, summary: dict) -> None:
        """Task hook: extra files for the output folder, written before it is published."""

    def _tokenizer(self, ref: str):
        from tasktool import runtime

        tok = runtime.load_tokenizer(ref, revision=self.recipe.get("revision"))
        tok.padding_side = "right"
        limit = self.recipe.get("max_length")
        current = getattr(tok, "model_max_length", None)
        if limit and (not current or current > limit):
            # saved with the model, so `tasktool infer` and `evaluate` truncate as training did
            tok.model_max_length = int(limit)
        return tok

    def _say(self, text: str) -> None:
        if not self.quiet and os.environ.get("RANK", "0") == "0":  # several processes: the main one speaks
            from tasktool.console import info

            info(text)


# ---------------------------------------------------------------------- helpers


def _dataset(features: list[dict]):
    if not isinstance(features, list):  # a ready map-style dataset (media trainers decode lazily)
        return features
    import datasets

    return datasets.Dataset.from_list(features)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _has_tensorboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def precision_flags(name: str) -> dict:
    """'auto' is the fastest precision that trains correctly on this device: bf16 mixed precision on
    GPUs that have it (else fp16), and on CPUs with native bf16 matrix units (AMX / AVX512-BF16),
    where it measured 1.6x fp32 with the same loss; plain fp32 on other CPUs."""
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
    small ops): the same update, measured 71 -> 15 ms per step for MiniLM on 2 CPU cores (+11%
    samples/s). Fused AdamW exists on CPU and CUDA in torch >= 2.4; elsewhere it is plain AdamW."""
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


def _step_of(path: Path | None) -> int:
    try:
        return int(path.name.rsplit("-", 1)[-1]) if path else 0
    except ValueError:
        return 0


def checkpoints(ckpt_dir: Path) -> tuple[list[Path], list[Path]]:
    """(complete, partial) checkpoint folders, oldest first; complete ones carry the COMPLETE marker."""
    if not ckpt_dir.is_dir():
        return [], []
    found = sorted((p for p in ckpt_dir.glob("checkpoint-*") if p.is_dir()), key=_step_of)
    return [p for p in found if (p / COMPLETE).is_file()], [p for p in found if not (p / COMPLETE).is_file()]


def last_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest complete checkpoint (a kill mid-save leaves a folder without the marker)."""
    complete, _ = checkpoints(ckpt_dir)
    return complete[-1] if complete else None


def pick_checkpoint(ckpt_dir: Path) -> tuple[Path | None, list[Path]]:
    """The checkpoint --resume continues from, and the partial folders it skips (one warning each)."""
    from tasktool.console import warn

    complete, partial = checkpoints(ckpt_dir)
    last = complete[-1] if complete else None
    if last is not None:
        for folder in partial:
            if _step_of(folder) > _step_of(last):
                warn(
                    f"skipping {folder.name}: incomplete (the run stopped while saving it); "
                    f"resuming from {last.name}, the newest complete checkpoint"
                )
    return last, partial


def mark_complete(folder: Path, step: int) -> None:
    """Flush every file of a checkpoint to disk, then write its COMPLETE marker atomically."""
    for path in folder.rglob("*"):
        if path.is_file() and path.name != COMPLETE:
            fsync(path)
    tmp = folder / (COMPLETE + ".tmp")
    tmp.write_text(json.dumps({"step": step, "time": time.time()}) + "\n", encoding="utf-8")
    fsync(tmp)
    os.replace(tmp, folder / COMPLETE)
    fsync(folder)


def rotate(ckpt_dir: Path, limit: int | None, keep: str | None = None) -> None:
    """Keep the newest `limit` complete checkpoints (and the best one); never the last complete one."""
    if not limit or limit <= 0:
        return
    complete, _ = checkpoints(ckpt_dir)
    protected = {complete[-1]} if complete else set()
    if keep:
        protected.add(Path(keep))
    surplus = len(complete) - max(limit, len(protected))
    for folder in complete:
        if surplus <= 0:
            break
        if folder not in protected:
            shutil.rmtree(folder, ignore_errors=True)
            surplus -= 1


_ATOMIC: dict[type, type] = {}


def atomic_checkpoints(cls: type) -> type:
    """`cls` (Trainer or a subclass) whose checkpoints get a COMPLETE marker once fully written.

    transformers writes checkpoint-N file by file and rotates old checkpoints before it returns;
    here rotation waits until the marker is down, so a kill at any moment leaves the previous
    complete checkpoint in place and the half-written one recognisable.
    """
    if cls not in _ATOMIC:

        class Atomic(cls):
            def _save_checkpoint(self, model, trial):
                limit = self.args.save_total_limit
                self.args.save_total_limit = None  # rotate below, only once the new one is complete
                try:
                    super()._save_checkpoint(model, trial)
                finally:
                    self.args.save_total_limit = limit
                if not self.args.should_save:
                    return
                run_dir = Path(self._get_output_dir(trial=trial))
                mark_complete(run_dir / f"checkpoint-{self.state.global_step}", self.state.global_step)
                rotate(run_dir, limit, self.state.best_model_checkpoint)

            def _save_optimizer_and_scheduler(self, output_dir):
                _hang_if_asked(Path(output_dir), self.state.global_step)
                super()._save_optimizer_and_scheduler(output_dir)

        Atomic.__name__ = Atomic.__qualname__ = "Atomic" + cls.__name__
        _ATOMIC[cls] = Atomic
    return _ATOMIC[cls]


def _hang_if_asked(folder: Path, step: int) -> None:
    """Test hook (see HANG_DURING_SAVE): stop mid-save so a test can kill the process right there."""
    wanted = os.environ.get(HANG_DURING_SAVE)
    if wanted and wanted.strip() == str(step):
        (folder / ".hanging").touch()
        time.sleep(600)


def _quiet_trainer(trainer) -> None:
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


# ---------------------------------------------------------------------- evaluation helpers


def run_engine(
    spec,
    model_dir: str,
    payloads: list,
    batch_size: int = 32,
    device: str = "auto",
    max_length: int | None = None,
    predictor_cls=None,
    **opts,
) -> list[dict]:
    """Predictions for payloads through tasktool.engine, exactly as `tasktool infer` makes them."""
    from tasktool.engine import Engine, Item
    from tasktool.options import InferOptions

    options = InferOptions(
        model=model_dir, device=device, batch_size=batch_size, max_length=max_length, **opts
    )
    cls = predictor_cls or spec.load_predictor()
    predictor = cls(spec, options)
    engine = Engine(predictor, batch_size=batch_size)
    return list(engine.run(Item(i, p) for i, p in enumerate(payloads)))
