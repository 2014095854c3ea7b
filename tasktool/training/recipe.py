"""The recipe schema: every key declared once in FIELDS with its type and meaning, so a typo is caught
before any model loads ("unknown recipe key 'lr_rate' (did you mean 'lr'?)") and `epochs=abc` is a
one-line error. Reading, checking and writing recipe YAML; tasktool.recipes layers them per task.
Import-light: yaml only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tasktool.errors import TaskToolError, nearest

# key -> (type, help). Types: int, float, str, bool, list (comma-separated on the command line).
FIELDS: dict[str, tuple[type, str]] = {
    "task": (str, "canonical task name"),
    "model": (str, "base checkpoint (Hub id or folder)"),
    "revision": (str, "Hub revision of the base checkpoint"),
    "metric": (str, "the metric that scores the task"),
    # optimisation
    "epochs": (float, "passes over the training data"),
    "max_steps": (int, "stop after this many optimizer steps (overrides epochs when > 0)"),
    "lr": (float, "peak learning rate"),
    "batch_size": (int, "training examples per device batch"),
    "eval_batch_size": (int, "evaluation examples per batch"),
    "gradient_accumulation_steps": (int, "batches per optimizer step"),
    "weight_decay": (float, "AdamW weight decay"),
    "warmup_ratio": (float, "fraction of steps spent warming the learning rate up"),
    "lr_scheduler": (str, "linear, cosine, constant, constant_with_warmup, ..."),
    "max_grad_norm": (float, "gradient clipping"),
    "seed": (int, "random seed (data order, head initialisation, held-out split)"),
    "precision": (str, "auto (bf16/fp16 on GPU, fp32 on CPU), fp32, bf16, fp16"),
    "optimizer": (
        str,
        "auto (AdamW with torch's fused kernel where it has one), or a TrainingArguments optim name "
        "(adamw_torch, adafactor, sgd, ...)",
    ),
    "fast_dropout": (
        bool,
        "CPU training: dropout masks from 16 random bits each and attention without SDPA's slow dropout "
        "path (same distribution, faster steps); false: torch's own dropout",
    ),
    "group_by_length": (
        bool,
        "batches of examples of similar length (least padding; batches are then not random, which "
        "can change what is learnt where labels go with length)",
    ),
    "micro_batches": (
        str,
        "auto (2 on CPU for batches of 16+, else 1) or N: run each random batch as N length-sorted "
        "micro-batches, each padded to its own longest row (same gradient, less padding)",
    ),
    "concurrent_micro_batches": (
        bool,
        "CPU, one process: run a batch's micro-batches on threads at once, each on its share of the "
        "cores, balanced by padded tokens (default true; false: one after another on all cores)",
    ),
    "packed_encoder": (
        bool,
        "CPU training of BERT-style encoders and DistilBERT (classification, NER): layers compute the real "
        "tokens only, attention on small groups of rows of similar length (same loss and gradients; "
        "default true; false: the model's own padded forward, with length-sorted micro-batches)",
    ),
    # evaluation / checkpoints / logging
    "eval_fraction": (float, "held-out share of the training data when no eval data is given"),
    "eval_steps": (int, "evaluate every N steps (0: once per epoch)"),
    "save_steps": (int, "checkpoint every N steps (0: once per epoch)"),
    "save_total_limit": (int, "checkpoints kept in the output folder"),
    "keep_checkpoints": (bool, "keep checkpoints/ after training (default: removed once the model is saved)"),
    "logging_steps": (int, "log the loss every N steps"),
    "max_train_samples": (int, "use at most N training examples (0: all)"),
    "max_eval_samples": (int, "use at most N evaluation examples (0: all)"),
    # text
    "max_length": (int, "longest tokenized input; longer inputs are truncated (QA: windowed)"),
    "label_names": (list, "classification: names for sorted integer labels, e.g. negative,positive"),
    "label_all_tokens": (bool, "NER: label every subword, not only the first of a word"),
    "stride": (int, "QA: tokens shared by consecutive windows of a long context"),
    "max_answer_length": (int, "QA: longest answer in tokens"),
    # seq2seq / language modelling (used by the later trainers)
    "max_target_length": (int, "seq2seq: longest tokenized target"),
    "num_beams": (int, "seq2seq: beam width when generating for evaluation"),
    "generation_max_new_tokens": (int, "seq2seq: tokens generated for evaluation"),
    "predict_with_generate": (bool, "seq2seq: generate during evaluation to score ROUGE/BLEU"),
    "source_prefix": (str, "seq2seq: text put before every source (T5 'summarize: ')"),
    "source_lang": (str, "seq2seq: source language key of a language pair"),
    "target_lang": (str, "seq2seq: target language key of a language pair"),
    "block_size": (int, "causal/masked LM: tokens per training chunk"),
    "packing": (bool, "causal LM: concatenate texts and cut them into blocks"),
    "mlm_probability": (float, "masked LM: share of tokens masked"),
    "line_by_line": (
        bool,
        "causal/masked LM: each line of a .txt file is a document (false: the whole file)",
    ),
    # audio / images
    "max_audio_seconds": (
        float,
        "audio: longer training clips are cut (classification) or left out (ASR); 0: no limit",
    ),
    "allow_absolute_paths": (bool, "audio/images: manifest paths may point outside the manifest's folder"),
    "strict": (bool, "audio/images: stop at an unreadable file instead of skipping it with a warning"),
    "language": (str, "Whisper: language of the transcripts (en, de, ...), trained into the decoder prompt"),
    "freeze_feature_encoder": (
        bool,
        "wav2vec2-style audio models: keep the convolutional feature encoder fixed",
    ),
    "augment": (bool, "images: random resized crops and flips while training (never for evaluation)"),
    # parameter-efficient fine-tuning (peft) and chat models
    "lora": (bool, "train LoRA adapters (peft) instead of all weights; the output folder holds the adapter"),
    "lora_r": (int, "LoRA rank (default 8)"),
    "lora_alpha": (float, "LoRA scaling numerator (default 2 x lora_r)"),
    "lora_dropout": (float, "dropout on the LoRA input (default 0.05)"),
    "lora_target_modules": (
        list,
        "layers that get adapters, e.g. q_proj,v_proj (default: every linear projection, attention and "
        "MLP, outside the task head)",
    ),
    "merge": (
        bool,
        "LoRA: save the adapter merged into the base weights (a plain model; adapter/ beside it)",
    ),
    "load_in_4bit": (bool, "QLoRA: load the base model in 4-bit NF4 with bitsandbytes (CUDA GPU only)"),
    "load_in_8bit": (bool, "load the base model in 8-bit with bitsandbytes (CUDA GPU only; with lora)"),
    "chat_template": (
        str,
        "a Jinja chat template FILE for tokenizers without one (chat data; saved with the tokenizer)",
    ),
    # best checkpoint, early stopping, label set, held-out share, trackers, sharing
    "load_best_model": (
        bool,
        "with evaluation data: evaluate and checkpoint each epoch (or every eval_steps) and save the best "
        "checkpoint's model, not the last one (default true)",
    ),
    "metric_for_best": (
        str,
        "what picks the best checkpoint: the task's metric (accuracy, f1) or loss (default: the task's, "
        "loss for tasks without a cheap one)",
    ),
    "early_stopping_patience": (int, "stop after N evaluations without improvement (0: off)"),
    "early_stopping_threshold": (float, "how much the metric must improve to count as better"),
    "labels": (
        list,
        "classification/NER: the whole label set, declared up front (labels that training lacks still "
        "get an output; eval labels outside it count as errors)",
    ),
    "max_eval_holdout": (int, "most rows held out for evaluation when no eval data is given (default 1000)"),
    "report_to": (str, "experiment tracker: none, tensorboard, mlflow or wandb (default none)"),
    "push_to_hub": (str, "after a successful run, upload the model, card and metrics to this Hub repo"),
    "hub_private": (bool, "push_to_hub: create the repo private"),
}

# key -> (lowest, lowest allowed?, highest, highest allowed?): the valid range of each number, next to
# its type above. coerce() refuses a value outside it (a usage error naming the range), so nothing is
# replaced by a default behind the user's back (`batch_size=0` never trains with 8 and records 0).
RANGES: dict[str, tuple[float | None, bool, float | None, bool]] = {
    "epochs": (0, False, None, False),
    "max_steps": (0, True, None, False),
    "lr": (0, False, None, False),
    "batch_size": (1, True, None, False),
    "eval_batch_size": (1, True, None, False),
    "gradient_accumulation_steps": (1, True, None, False),
    "weight_decay": (0, True, None, False),
    "warmup_ratio": (0, True, 1, False),
    "max_grad_norm": (0, True, None, False),
    "seed": (0, True, 2**32 - 1, True),
    "eval_fraction": (0, False, 1, False),
    "eval_steps": (0, True, None, False),
    "save_steps": (0, True, None, False),
    "save_total_limit": (0, True, None, False),
    "logging_steps": (1, True, None, False),
    "max_train_samples": (0, True, None, False),
    "max_eval_samples": (0, True, None, False),
    "max_length": (1, True, None, False),
    "stride": (0, True, None, False),
    "max_answer_length": (1, True, None, False),
    "max_target_length": (1, True, None, False),
    "num_beams": (1, True, None, False),
    "generation_max_new_tokens": (1, True, None, False),
    "block_size": (2, True, None, False),
    "mlm_probability": (0, False, 1, False),
    "max_audio_seconds": (0, True, None, False),
    "early_stopping_patience": (0, True, None, False),
    "early_stopping_threshold": (0, True, None, False),
    "max_eval_holdout": (1, True, None, False),
}

# names people bring from transformers' TrainingArguments, for the "did you mean" hint
SYNONYMS = {
    "learning_rate": "lr",
    "num_train_epochs": "epochs",
    "num_epochs": "epochs",
    "epoch": "epochs",
    "per_device_train_batch_size": "batch_size",
    "train_batch_size": "batch_size",
    "bs": "batch_size",
    "per_device_eval_batch_size": "eval_batch_size",
    "lr_scheduler_type": "lr_scheduler",
    "warmup": "warmup_ratio",
    "warmup_steps": "warmup_ratio",
    "optim": "optimizer",
    "fp16": "precision",
    "bf16": "precision",
    "model_name_or_path": "model",
    "checkpoint": "model",
    "max_seq_length": "max_length",
    "doc_stride": "stride",
    "r": "lora_r",
    "target_modules": "lora_target_modules",
    "qlora": "load_in_4bit",
    "label_list": "labels",
    "label_set": "labels",
    "metric_for_best_model": "metric_for_best",
    "load_best_model_at_end": "load_best_model",
    "patience": "early_stopping_patience",
    "early_stopping": "early_stopping_patience",
}

_TRUE, _FALSE = ("1", "true", "yes", "on", "y"), ("0", "false", "no", "off", "n")


def coerce(key: str, value: Any, source: str = "", fields: dict | None = None) -> Any:
    """Check/convert one value to the declared type of `key`; unknown keys name the nearest one.

    `fields`: the keys to check against (default FIELDS; a task adds its own, see tasktool.recipes)."""
    fields = FIELDS if fields is None else fields
    where = f" in {source}" if source else ""
    if key not in fields:
        guess = [SYNONYMS[key]] if key in SYNONYMS else nearest(key, [*fields, *SYNONYMS])
        guess = [SYNONYMS.get(g, g) for g in guess]
        hint = f"did you mean '{guess[0]}'?" if guess else "see `tasktool recipes show TASK --keys`"
        raise TaskToolError(f"unknown recipe key '{key}'{where}", hint)
    kind = fields[key][0]
    if value is None:
        return None
    bad = TaskToolError(
        f"recipe key '{key}'{where} must be {_kind_name(kind)}, got {value!r}", f"e.g. {key}={_example(kind)}"
    )
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise bad
    if kind is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, float) and value.is_integer():
            return _in_range(key, int(value), where)
        try:
            return _in_range(key, int(str(value).strip()), where)
        except ValueError:
            raise bad from None
    if kind is float:
        if isinstance(value, bool):
            raise bad
        try:
            number = float(str(value).strip())
        except ValueError:
            raise bad from None
        if not math.isfinite(number):
            raise bad
        return _in_range(key, number, where)
    if kind is list:
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        return [part.strip() for part in str(value).split(",") if part.strip()]
    if isinstance(value, (dict, list)):
        raise bad
    return str(value)


def _in_range(key: str, value, where: str = ""):
    """`value` if it lies in the declared range of `key`; else a usage error naming the range."""
    from tasktool.options import describe_range, in_range

    bounds = RANGES.get(key)
    if bounds is None or in_range(value, *bounds):
        return value
    valid = describe_range(*bounds)
    example = bounds[0] if bounds[1] and bounds[0] is not None else None
    raise TaskToolError(
        f"recipe key '{key}'{where} must be {valid}, got {value:g}",
        f"give {key} a value {valid}" + (f", e.g. {key}={example:g}" if example is not None else ""),
    )


def _kind_name(kind: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", list: "a list", str: "text"}[kind]


def _example(kind: type) -> str:
    return {int: "8", float: "2e-5", bool: "true", list: "a,b", str: "value"}[kind]


def read_yaml(path: str | Path, fields: dict | None = None) -> dict:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise TaskToolError(
            f"recipe file '{path}' not found",
            "check the path given to --recipe (or name a recipe from `tasktool recipes list`)",
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0]
        raise TaskToolError(f"recipe '{path}' is not valid YAML: {first}", "check its indentation") from exc
    if not isinstance(data, dict):
        raise TaskToolError(
            f"recipe '{path}' must be a mapping of key: value", "see `tasktool recipes show TASK`"
        )
    return {key: coerce(str(key), value, str(path), fields) for key, value in data.items()}


def parse_overrides(pairs: list[str], fields: dict | None = None) -> dict:
    """`key=value` words from the command line, type-checked."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key:
            raise TaskToolError(
                f"cannot read '{pair}' as an override", "write overrides as key=value, e.g. lr=3e-5"
            )
        out[key] = coerce(key, value, "the command line", fields)
    return out


def dump(recipe: dict) -> str:
    import yaml

    ordered = {key: recipe[key] for key in FIELDS if key in recipe and recipe[key] is not None}
    # then a task's own keys (its folder's RECIPE_KEYS, checked when the recipe was resolved)
    ordered.update({k: v for k, v in recipe.items() if k not in FIELDS and v is not None})
    return yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True)
