"""tasktool's CPU speed patches, and the two calls that decide which of them a model gets.

Each patch computes what a transformers module computes, faster, by replacing the `forward` of modules
it recognises (never weights or state dicts):

- fast_dropout: CPU training; cheap dropout masks, and attention with dropout off SDPA's slow path
- packed_encoder: CPU training of BERT-style encoders; layers compute the real tokens only
- micro_batches: a training batch run as length-sorted parts (on threads at once on a CPU)
- first_token: BERT-style sentence classifiers; the last layer computes position 0 only
- cpu_fusion: bf16 CPU inference; GELU and residual adds fused into oneDNN's linear

A patch's `apply(model)` returns False and leaves the model alone when it does not recognise the
model, or when the installed transformers is outside the releases the patches were tested on
(`layers.TESTED_TRANSFORMERS`, the range pyproject.toml pins). `apply_for_training` and
`apply_for_inference` make the decisions the trainer and the predictors need and return an `Applied`
naming what was applied and, for each patch left off, why: the fine-tuning run prints that line and
records it (train_log.jsonl, metrics.json, the model card); inference logs it at debug level.
Measured figures live in benchmarks/README.md and benchmarks/results.json.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from tasktool.accel import cpu_fusion, fast_dropout, first_token, micro_batches, packed_encoder
from tasktool.accel.layers import untested_transformers

log = logging.getLogger(__name__)

NO_DROPOUT = "no dropout to replace"


@dataclass
class Applied:
    """The speed patches a model got: `applied` (names, in order) and `off` (name -> why not)."""

    applied: list[str] = field(default_factory=list)
    off: dict[str, str] = field(default_factory=dict)
    # training: how the Trainer runs its batches (`trainer_class`)
    micro_batches: int = 1
    loss_units: str | None = None
    concurrent: bool = False
    packed: bool = False
    _undo: list = field(default_factory=list, repr=False)

    def _did(self, name: str, applied: bool, why_not: str, undo=None) -> bool:
        if applied:
            self.applied.append(name)
            if undo is not None:
                self._undo.append(undo)
        else:
            self.off[name] = why_not
        return applied

    def line(self) -> str:
        """One line for people, e.g. 'speed patches: fast_dropout, first_token (off: cpu_fusion: not bf16)'."""
        off = "; ".join(f"{name}: {why}" for name, why in self.off.items())
        return f"speed patches: {', '.join(self.applied) or 'none'}" + (f" (off: {off})" if off else "")

    def record(self) -> dict:
        """The train_log.jsonl record."""
        return {"event": "speed_patches", "applied": list(self.applied), "off": dict(self.off)}

    def trainer_class(self, base_cls: type) -> type:
        """`base_cls` (a transformers Trainer) running its batches as decided: micro-batches, threads, and the
        packed encoder's masks; `base_cls` itself where nothing changes."""
        return micro_batches.with_micro_batches(
            base_cls, self.micro_batches, self.loss_units, self.concurrent, self.packed
        )

    def remove(self) -> None:
        """Undo the model patches (last applied first), e.g. after training, before the model is saved."""
        while self._undo:
            self._undo.pop()()


def apply_for_training(
    model, *, device_type: str, recipe: dict, loss_units: str | None, batch_size: int
) -> Applied:
    """Patch `model` for fine-tuning as the recipe and the device allow; `Applied.trainer_class` gives the
    Trainer class to build, `Applied.remove` undoes the model patches after training.

    Raises TaskToolError for a bad `micro_batches` recipe value."""
    import torch

    k = micro_batches.resolve(recipe.get("micro_batches"), batch_size, device_type)
    done = Applied(micro_batches=k, loss_units=loss_units)
    untested = untested_transformers()
    cpu = device_type == "cpu"

    # fast_dropout: CPU training (GPUs have fused dropout kernels of their own)
    why = _why_off(untested, recipe, "fast_dropout", cpu)
    tried = why is None
    if tried:
        why = NO_DROPOUT
    done._did("fast_dropout", tried and fast_dropout.apply(model), why, lambda: fast_dropout.remove(model))

    # packed_encoder: CPU, tasks whose loss reads no padded position
    why = _why_off(untested, recipe, "packed_encoder", cpu) or (
        None if loss_units else "the task's batches stay whole"
    )
    done.packed = done._did(
        "packed_encoder",
        why is None and packed_encoder.apply(model),
        why or "not a BERT-style encoder",
        lambda: packed_encoder.remove(model),
    )

    # first_token: sentence classifiers (any device; same loss and gradients)
    done._did(
        "first_token",
        not untested and first_token.apply(model, training=True),
        untested or "not a BERT-style sentence classifier",
        lambda: first_token.remove(model),
    )

    # micro-batches, and whether they run on threads at once: masks must come from per-part generators
    # (tasktool's dropout), so that the same seed gives the same run
    if recipe.get("concurrent_micro_batches", True) is False:
        concurrent_off = "off (recipe)"
    elif not tried:
        concurrent_off = "needs fast_dropout (each part draws its masks from a generator of its own)"
    elif torch.get_num_threads() < 2:
        concurrent_off = "one CPU thread"
    else:
        concurrent_off = None
    done.concurrent = concurrent_off is None
    if untested:  # the Trainer subclass leans on Trainer internals too
        why, done.micro_batches = untested, 1
    elif not loss_units:
        why = "the task's batches stay whole"
    elif k < 2:
        auto = recipe.get("micro_batches") in (None, "auto")
        why = (
            ("not on CPU" if not cpu else f"batch of {batch_size} (auto splits 16+)")
            if auto
            else "off (recipe)"
        )
    elif done.packed and not done.concurrent:
        why = "packed encoder has no padding to shed"
    else:
        why = None
    if done._did("micro_batches", why is None, why or ""):
        done._did("concurrent_micro_batches", done.concurrent, concurrent_off or "")
    return done


def apply_for_inference(model, *, compile: bool) -> Applied:
    """Patch a loaded inference model (before any torch.compile); logged at debug level only."""
    done = Applied()
    if getattr(model, "backend", None) == "onnxruntime":  # ONNX Runtime optimizes its own graph
        return done
    import torch

    untested = untested_transformers()
    done._did(
        "first_token",
        not untested and first_token.apply(model),
        untested or "not a BERT-style sentence classifier",
        lambda: first_token.remove(model),
    )
    if untested:
        why = untested
    elif compile:
        why = "--compile (inductor fuses for itself)"
    elif model.device.type != "cpu":
        why = "not on CPU"
    elif model.dtype != torch.bfloat16:
        why = "not bf16 (float32 gains nothing)"
    elif not cpu_fusion.available():
        why = "this PyTorch has no working oneDNN fused linear"
    else:
        why = None
    done._did(
        "cpu_fusion",
        why is None and cpu_fusion.apply(model),
        why or "not a BERT-family model",
        lambda: cpu_fusion.remove(model),
    )
    log.debug("%s", done.line())
    return done


def _why_off(untested: str | None, recipe: dict, key: str, cpu: bool) -> str | None:
    if untested:
        return untested
    if recipe.get(key, True) is False:
        return "off (recipe)"
    if not cpu:
        return "not on CPU"
    return None


__all__ = [
    "Applied",
    "apply_for_inference",
    "apply_for_training",
    "cpu_fusion",
    "fast_dropout",
    "first_token",
    "micro_batches",
    "packed_encoder",
]
