"""The fine-tuning engine every task's trainer builds on (the task-agnostic half of a task's train.py).

`TaskTrainer.run()` is the whole job: read and check the data (the task's Reader), hold out an eval
split, pick the base model (the bundled MiniLM when the Hub is offline), build features, train with
transformers' Trainer (dynamic padding, checkpoints, resume), save the final model atomically, then
score it with the task's Evaluator, which runs the SAME engine and predictor `tasktool infer` uses,
so `tasktool evaluate` on the saved folder reproduces metrics.json.

A task's train.py subclasses TaskTrainer and fills in the hooks marked "task hook"; seq2seq and
language-model trainers override `trainer_class` / `training_arguments` as well.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from tasktool.errors import TaskToolError
from tasktool.io.readers import Source
from tasktool.training import data as D
from tasktool.training.checkpoints import CHECKPOINTS, atomic_checkpoints, pick_checkpoint, step_of


class TaskTrainer:
    """Shared orchestration; a task's subclass describes its labels, features and collator."""

    loss_units: str | None = (
        None  # what the loss is a mean over (accel.micro_batches.UNITS); None: whole batches
    )
    eval_file_name = "eval.jsonl"

    def __init__(self, spec, recipe: dict, columns: dict[str, str | None] | None = None, quiet: bool = False):
        self.spec = spec
        self.recipe = recipe
        self.quiet = quiet
        self.reader = spec.reader(recipe, columns)
        self.evaluator = spec.evaluator(recipe)
        self.labels: list[str] | None = None

    # ------------------------------------------------------------------ task hooks
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

    def holdout(self, examples: list[dict]) -> tuple[list[dict], list[dict]]:
        """Task hook: the held-out split when no eval data is given (fixed seed, capped)."""
        return D.holdout(
            examples,
            self.recipe.get("eval_fraction") or 0.1,
            self.recipe.get("seed") or 42,
            self.holdout_cap(),
        )

    def holdout_cap(self) -> int:
        return int(self.recipe.get("max_eval_holdout") or D.MAX_HOLDOUT)

    # Trainer-time evaluation (each epoch or eval_steps) picks the best checkpoint: by the metric below when
    # the task computes it from logits (`logits_metrics`), else by eval loss.
    best_metric = "loss"  # task hook: the default metric_for_best
    trainer_metric_names: tuple[str, ...] = ()  # task hook: the names logits_metrics returns

    def logits_metrics(self, eval_examples: list[dict], eval_features: list[dict]):
        """Task hook: (compute_metrics, preprocess_logits_for_metrics) for the Trainer's evaluations, from
        the logits; None where the task has no cheap metric (selection then goes by eval loss)."""
        return None

    def trainer_class(self):
        from transformers import Trainer

        return Trainer

    def training_arguments(self, ckpt_dir: Path, log_dir: Path, has_eval: bool, **extra):
        from tasktool.training.arguments import training_arguments

        extra.setdefault("best_metric", self.best_metric if self.trainer_metric_names else "loss")
        extra.setdefault("metrics", ("loss", *self.trainer_metric_names))
        return training_arguments(self.recipe, ckpt_dir, log_dir, has_eval, **extra)

    # ------------------------------------------------------------------ data
    def read(self, source: Source) -> list[dict]:
        return self.reader.read(source)

    def load_examples(self, data: Source, eval_data: Source | None) -> tuple[list[dict], list[dict], bool]:
        train = self.read(data)
        held_out = eval_data is None
        train, evals = self.holdout(train) if held_out else (train, self.read(eval_data))
        if self.recipe.get("max_train_samples"):
            train = train[: self.recipe["max_train_samples"]]
        if self.recipe.get("max_eval_samples"):
            evals = evals[: self.recipe["max_eval_samples"]]
        # a split we made ourselves must not lose a rare label: take the label set from all the rows
        self.labels = self.label_set(train + evals if held_out and not self.stratified else train)
        if held_out and self.labels is not None and not self.stratified:
            try:  # ... but training itself needs what --eval-data would need of it (two labels, ...)
                self.label_set(train)
            except TaskToolError as exc:
                raise TaskToolError(
                    f"after holding out {self.recipe.get('eval_fraction') or 0.2} of the data for evaluation, "
                    f"{exc.message}",
                    "give more rows of each label, or pass --eval-data",
                ) from exc
        if self.labels is not None and (not held_out or self.stratified):
            known = {label: i for i, label in enumerate(self.labels)}
            evals = self.check_labels(evals, known, eval_data.name if eval_data else "the held-out split")
            self.evaluator.quiet_unseen = True  # warned once, here, before training
        return train, evals, held_out

    stratified = False  # the held-out split keeps every label in training (media classifiers)

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
        from tasktool.training import lora

        quantization = lora.quantization(self.recipe)  # QLoRA: a 4/8-bit base on the GPU
        return runtime.load_model(
            self.spec,
            ref,
            revision=self.recipe.get("revision"),
            device="cpu",
            dtype="auto" if quantization else "float32",
            for_training=True,
            quantization=quantization,
            adapter_mode="train" if lora.wanted(self.recipe) else "merge",
            **self.model_kwargs(),
        )

    def load_processor(self, ref: str):
        """Task hook: the tokenizer (or feature extractor / image processor) saved with the model."""
        from tasktool import runtime

        tok = runtime.load_tokenizer(ref, revision=self.recipe.get("revision"))
        tok.padding_side = "right"
        limit = self.recipe.get("max_length")
        current = getattr(tok, "model_max_length", None)
        if limit and (not current or current > limit):
            # saved with the model, so `tasktool infer` and `evaluate` truncate as training did
            tok.model_max_length = int(limit)
        return tok

    length_keys = ("max_length", "max_target_length")

    def fit_lengths(self, tokenizer, config) -> None:
        """Recipe lengths beyond what the model takes (its position table, its tokenizer's limit) are
        lowered to that limit, with one note each: features never outgrow the model."""
        from tasktool import runtime

        if not isinstance(getattr(tokenizer, "model_max_length", None), int):
            return  # feature extractors and image processors: no token lengths
        limit = runtime.max_input_length(tokenizer, config)
        for key in self.length_keys:
            asked = self.recipe.get(key)
            if asked and int(asked) > limit:
                self._say(
                    f"note: {key} {asked} is beyond what the model takes ({limit} tokens): using {limit}"
                )
                self.recipe[key] = limit

    # ------------------------------------------------------------------ the run
    def run(
        self,
        data: Source,
        eval_data: Source | None,
        output_dir: str | Path,
        model: str | None = None,
        resume: bool = False,
    ) -> dict:
        out = _output_folder(output_dir)
        from tasktool.io.outputs import OutputLock, refuse_overlap
        from tasktool.training.arguments import check_recipe

        check_recipe(self.recipe)

        refuse_overlap(
            out,
            "--output-dir",
            [("training data", data.path), ("evaluation data", eval_data.path if eval_data else None)]
            + [("base model", model or "")],
            folder=True,
        )
        # one run at a time per output folder (the main process of a multi-process run holds it)
        out.parent.mkdir(parents=True, exist_ok=True)
        lock = OutputLock(out, "--output-dir").acquire() if os.environ.get("RANK", "0") == "0" else None
        try:
            return self._run_locked(out, data, eval_data, model, resume)
        finally:
            if lock is not None:
                lock.release()

    def _run_locked(self, out: Path, data: Source, eval_data: Source | None, model, resume: bool) -> dict:
        ckpt_dir = out / CHECKPOINTS
        if resume and (out / "metrics.json").is_file() and (out / "config.json").is_file():
            raise TaskToolError(
                f"--resume: '{out}' holds a finished run (metrics.json); there is nothing to resume",
                "choose another --output-dir to train again, or remove this one",
            )
        last, partial = _resume_point(ckpt_dir, resume)
        if not resume and (
            (out / "config.json").exists() or (out / "adapter_config.json").exists() or ckpt_dir.exists()
        ):
            raise TaskToolError(
                f"output folder '{out}' already holds a model or checkpoints",
                "pass --resume to continue it, or choose another --output-dir",
            )
        self.hub = self.preflight(out)  # trackers, the Hub: fail before any data or model is read
        train_ex, eval_ex, held_out = self.load_examples(data, eval_data)
        base = self.base_model(model)
        self._say(
            f"[bold]1/4[/bold] data: {len(train_ex)} training and {len(eval_ex)} evaluation examples"
            + (
                f" (held out {len(eval_ex)} of {len(train_ex) + len(eval_ex)} rows: eval_fraction "
                f"{self.recipe.get('eval_fraction') or 0.1}, at most {self.holdout_cap()}, seed "
                f"{self.recipe.get('seed') or 42})"
                if held_out
                else ""
            )
        )
        trainer, tokenizer = self._build(base, train_ex, eval_ex, out, last, partial, resume)
        self._say(
            f"[bold]2/4[/bold] training {self.spec.name} from {base} on {trainer.args.device.type}"
            + (f", resuming from {last.name}" if last else "")
        )
        result = self._train(trainer, last)
        self._say(f"[bold]3/4[/bold] saving the model to {out}")
        if not trainer.is_world_process_zero():
            # several processes (accelerate launch / torchrun): FSDP/DeepSpeed gather the weights on
            # every process, the main one writes them, then evaluates and publishes alone
            trainer.save_model()
            sys.exit(0)
        summary = self._publish(
            trainer, tokenizer, result, base, out, data, eval_data, eval_ex, train_ex, last
        )
        if self.hub is not None:
            from tasktool.training import sharing

            self._say(f"uploading {out} to the Hub as {self.hub.repo_id}")
            summary["hub_url"] = sharing.push(self.hub, out)
        return summary

    def preflight(self, out: Path):
        """Checks that need no data: the tracker's package, and the Hub (repo name, token, reachable)."""
        from tasktool.training import sharing
        from tasktool.training.arguments import best_checkpoint, report_to

        report_to(self.recipe.get("report_to"), out / "runs")
        names = ("loss", *self.trainer_metric_names)  # metric_for_best, patience: checked before any work
        best_checkpoint(self.recipe, True, self.best_metric if self.trainer_metric_names else "loss", names)
        return sharing.preflight(self.recipe) if self.recipe.get("push_to_hub") else None

    def _build(self, base, train_ex, eval_ex, out: Path, last, partial, resume: bool):
        """The tokenizer, model, features and Trainer (with the speed patches this run can use)."""
        from transformers import set_seed

        from tasktool import accel
        from tasktool.training import lora
        from tasktool.training.callbacks import JsonlLogCallback, ProgressCallback, quiet_trainer

        tokenizer = self.load_processor(base)
        set_seed(int(self.recipe.get("seed") or 42))  # the new head's initialisation is part of the run
        hf_model = self.load_model(base)
        self.fit_lengths(tokenizer, hf_model.config)
        self.lora_info = None
        if lora.wanted(self.recipe):  # every task: adapters on the base, only they (and the head) train
            hf_model, self.lora_info = lora.wrap(hf_model, self.recipe, self.spec.model_class, base)
            info = self.lora_info
            self._say(
                f"LoRA r={info['lora_r']} on {','.join(info['lora_targets'])}: "
                f"{info['trainable_parameters']:,} of {info['total_parameters']:,} parameters trainable "
                f"({100 * info['trainable_parameters'] / max(1, info['total_parameters']):.2f}%)"
            )
        train_features = self.features(train_ex, tokenizer, train=True)
        eval_features = self.features(eval_ex, tokenizer, train=False) if eval_ex else None
        if not train_features:
            raise TaskToolError("no training features could be built from the data", "check the data file")
        out.mkdir(parents=True, exist_ok=True)
        self.log_path = out / "train_log.jsonl"
        if not resume:
            self.log_path.unlink(missing_ok=True)  # several processes may get here at once
        if self.lora_info and os.environ.get("RANK", "0") == "0":
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"event": "lora", "step": 0, **self.lora_info}) + "\n")
        args = self.training_arguments(out / CHECKPOINTS, out / "runs", has_eval=bool(eval_features))
        hooks = self.logits_metrics(eval_ex, eval_features) if eval_features else None
        from tasktool.training.arguments import early_stopping

        stopper = early_stopping(self.recipe, args)
        # tasktool.accel's CPU speed patches (on the model inside a peft wrapper): said, logged, undone after
        self.applied = accel.apply_for_training(
            lora.base_of(hf_model),
            device_type=args.device.type,
            recipe=self.recipe,
            loss_units=self.loss_units,
            batch_size=args.per_device_train_batch_size,
        )
        self.patches = {  # how it ran, for the model card (the patches themselves: self.applied)
            "device": args.device.type,
            "precision": "bf16 autocast" if args.bf16 else ("fp16 autocast" if args.fp16 else "fp32"),
            "optimizer": args.optim.value if hasattr(args.optim, "value") else str(args.optim),
        }
        self.progress = ProgressCallback(quiet=self.quiet)
        resumed = step_of(last) if last else None
        callbacks = [JsonlLogCallback(self.log_path, resumed, opening=self.applied.record()), self.progress]
        if stopper is not None:
            callbacks.append(stopper)
        for folder in partial:  # the Trainer will write these steps again, from scratch
            shutil.rmtree(folder, ignore_errors=True)
        trainer = atomic_checkpoints(self.applied.trainer_class(self.trainer_class()))(
            model=hf_model,
            args=args,
            train_dataset=_dataset(train_features),
            eval_dataset=_dataset(eval_features) if eval_features else None,
            processing_class=tokenizer,
            data_collator=self.collator(tokenizer),
            callbacks=callbacks,
            **(
                {"compute_metrics": hooks[0], "preprocess_logits_for_metrics": hooks[1]}
                if hooks is not None
                else {}
            ),
        )
        quiet_trainer(trainer)
        return trainer, tokenizer

    def _train(self, trainer, last):
        self._say(self.applied.line())
        try:
            return trainer.train(resume_from_checkpoint=str(last) if last else None)
        finally:
            self.progress.stop()
            self.applied.remove()

    def _publish(
        self, trainer, tokenizer, result, base, out, data, eval_data, eval_ex, train_ex, last
    ) -> dict:
        """Save into a hidden sibling folder, evaluate it there, write the report, then swap it in: a folder
        that has config.json and metrics.json is a whole model, never half of one."""
        from tasktool.training import artifacts

        staging = artifacts.staging_dir(out)
        if self.lora_info is None:
            artifacts.save_model(trainer, tokenizer, staging)
        else:  # the adapter (+ config and tokenizer); merge=true: a plain merged model, the adapter beside it
            from tasktool.training import lora

            adapter_dir = staging / "adapter" if self.recipe.get("merge") else staging
            adapter_dir.mkdir(parents=True, exist_ok=True)
            artifacts.save_model(trainer, tokenizer, adapter_dir)
            lora.save_config(trainer.model, adapter_dir)
            if self.recipe.get("merge"):
                from tasktool import runtime

                self._say("merging the adapter into the base model (merge=true)")
                runtime.merge_adapter(str(adapter_dir), staging)
        self._say("[bold]4/4[/bold] evaluating the saved model")
        metrics, _ = self.evaluator.evaluate(
            str(staging),
            eval_ex,
            batch_size=int(self.recipe.get("eval_batch_size") or 32),
            max_length=self.recipe.get("max_length"),
        )
        held_out = eval_data is None
        signature = None
        if held_out:
            from tasktool.io.media import sign_held_out

            with open(staging / self.eval_file_name, "w", encoding="utf-8") as fh:
                for ex in eval_ex:
                    fh.write(json.dumps(self.reader.eval_row(ex), ensure_ascii=False) + "\n")
            # lets this user's `tasktool evaluate` trust the split's paths (see io.media._held_out_split)
            signature = sign_held_out(staging / self.eval_file_name)
        summary = {
            "task": self.spec.name,
            "base_model": artifacts.public_name(base),
            "eval": metrics,
            "train": {
                "global_step": int(result.global_step),
                "train_loss": float(result.training_loss),
                "train_runtime_s": round(float(result.metrics.get("train_runtime", 0.0)), 2),
                "train_examples": len(train_ex),
                "eval_examples": len(eval_ex),
                "resumed_from_step": step_of(last) if last else None,
                "speed_patches": self.applied.applied,
                "speed_patches_off": self.applied.off,
                **(self.lora_info or {}),
                **best_of(trainer),
            },
            "eval_data": self.eval_file_name if held_out else artifacts.public_name(eval_data.name),
            **({"labels": list(self.labels)} if self.labels else {}),
        }
        summary.update(self.evaluator.report())  # baseline, per-class scores, unseen labels
        summary["run"] = {**getattr(self, "patches", {}), **artifacts.provenance()}
        if signature:
            summary["eval_data_signature"] = signature
        artifacts.write_all(staging, self.recipe, summary, self.log_path, data_name=data.name)
        extra = self.evaluator.artifacts(staging)
        if extra:
            artifacts.append_to_card(staging, extra)
        artifacts.publish(staging, out, drop=() if self.recipe.get("keep_checkpoints") else (CHECKPOINTS,))
        return summary

    def _say(self, text: str) -> None:
        if not self.quiet and os.environ.get("RANK", "0") == "0":  # several processes: the main one speaks
            from tasktool.console import info

            info(text)


# ---------------------------------------------------------------------- helpers


def _output_folder(output_dir) -> Path:
    out = Path(output_dir).expanduser()
    if out.is_symlink():  # the final swap renames folders: work on the real one, keep the link
        out = out.resolve()
    if out.exists() and not out.is_dir():
        raise TaskToolError(
            f"--output-dir '{out}' is a file, not a folder", "choose a folder name for the model"
        )
    return out


def interrupted(output_dir) -> TaskToolError:
    """Ctrl-C during a fine-tune: one line that says what is on disk and how to go on."""
    from tasktool.errors import INTERRUPTED
    from tasktool.training.checkpoints import last_checkpoint

    ckpt_dir = _output_folder(output_dir) / CHECKPOINTS
    last = last_checkpoint(ckpt_dir)
    if last is not None:
        return TaskToolError(
            f"interrupted: the newest complete checkpoint is {ckpt_dir / last.name}",
            "rerun the same command with --resume to continue from it",
            exit_code=INTERRUPTED,
        )
    return TaskToolError(
        "interrupted before the first checkpoint was saved: nothing to resume",
        "rerun the command to start again",
        exit_code=INTERRUPTED,
    )


def _resume_point(ckpt_dir: Path, resume: bool):
    """(checkpoint to resume from, partial checkpoint folders); refuses --resume with nothing to resume."""
    last, partial = pick_checkpoint(ckpt_dir) if resume else (None, [])
    if resume and last is None:
        names = ", ".join(p.name for p in partial)
        found = f" is complete ({names}: incomplete, the run stopped while saving it)" if partial else ""
        raise TaskToolError(
            f"--resume: no checkpoint in '{ckpt_dir}'{found}",
            "start again without --resume: remove the folder or choose another --output-dir",
        )
    return last, partial


def best_of(trainer) -> dict:
    """Which checkpoint the saved model is: the best one by the selection metric, or the last step."""
    state, args = trainer.state, trainer.args
    if not getattr(args, "load_best_model_at_end", False):
        return {"saved_model": "last step"}
    if not state.best_model_checkpoint:
        return {"saved_model": "last step (no checkpoint was evaluated)"}
    stopped = state.global_step < state.max_steps
    return {
        "saved_model": "best checkpoint",
        "best_step": step_of(Path(state.best_model_checkpoint)),
        "best_metric": f"eval_{args.metric_for_best_model}".replace("eval_eval_", "eval_"),
        "best_value": float(state.best_metric) if state.best_metric is not None else None,
        "stopped_early": bool(stopped),
        "planned_steps": int(state.max_steps),
    }


def _dataset(features: list[dict]):
    if not isinstance(features, list):  # a ready map-style dataset (media trainers decode lazily)
        return features
    import datasets

    return datasets.Dataset.from_list(features)
