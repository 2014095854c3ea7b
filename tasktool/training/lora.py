"""LoRA / QLoRA with peft: the one place a model is wrapped for parameter-efficient fine-tuning.

`TaskTrainer` calls `wrap` right after loading the base model, so every task gets it from `lora=true`:
peft's task type follows the task's Auto class (causal LM, seq2seq LM, sequence / token classification,
question answering; others get a plain PeftModel), the task's freshly initialised head (classifier,
score, qa_outputs) is trained in full (`modules_to_save`), and everything else is frozen. By default
the adapters go on every linear projection of the network (attention and MLP; peft's "all-linear"), the
task head and the output embeddings left out; `lora_target_modules` names them instead.

The adapter is saved by the Trainer (adapter_config.json + adapter_model.safetensors); `save_config`
adds the model's config.json (task head size and labels), and tasktool.runtime loads base + adapter.
"""

from __future__ import annotations

from pathlib import Path

from tasktool.errors import TaskToolError, first_line

# transformers Auto class of a task -> peft task type
TASK_TYPES = {
    "AutoModelForCausalLM": "CAUSAL_LM",
    "AutoModelForSeq2SeqLM": "SEQ_2_SEQ_LM",
    "AutoModelForSequenceClassification": "SEQ_CLS",
    "AutoModelForTokenClassification": "TOKEN_CLS",
    "AutoModelForQuestionAnswering": "QUESTION_ANS",
}
HEADS = ("classifier", "score", "qa_outputs")  # task heads trained in full when the task has one
DEFAULTS = {"lora_r": 8, "lora_dropout": 0.05}


def wanted(recipe: dict) -> bool:
    return bool(recipe.get("lora"))


def quantization(recipe: dict) -> str | None:
    """'4bit' / '8bit' from the recipe's load_in_4bit / load_in_8bit (QLoRA), else None."""
    if recipe.get("load_in_4bit") and recipe.get("load_in_8bit"):
        raise TaskToolError("load_in_4bit and load_in_8bit are both set", "choose one")
    kind = "4bit" if recipe.get("load_in_4bit") else "8bit" if recipe.get("load_in_8bit") else None
    if kind and not wanted(recipe):
        raise TaskToolError(
            f"load_in_{kind}=true trains a quantized model, which only works with adapters",
            "add lora=true (QLoRA)",
        )
    return kind


def _linear_classes():
    import torch
    from transformers.pytorch_utils import Conv1D

    return (torch.nn.Linear, Conv1D)


def heads_of(model) -> list[str]:
    """The task heads the model has (top-level modules of a known head name)."""
    import torch

    return [name for name in HEADS if isinstance(getattr(model, name, None), torch.nn.Module)]


def default_targets(model, heads: list[str]) -> list[str]:
    """Names of the linear projections (attention and MLP) outside the task head and output embeddings."""
    linear = _linear_classes()
    skip = {id(m) for h in heads for m in getattr(model, h).modules()}
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if out_emb is not None:
        skip.add(id(out_emb))
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if name and isinstance(module, linear) and id(module) not in skip
        }
    )


def lora_config(model, recipe: dict, model_class: str):
    from peft import LoraConfig

    heads = heads_of(model)
    targets = list(recipe.get("lora_target_modules") or [])
    if not targets:
        targets = default_targets(model, heads)
        if not targets:
            kind = getattr(model.config, "model_type", type(model).__name__)
            raise TaskToolError(
                f"lora=true: '{kind}' models have no linear projections tasktool knows to put adapters on",
                "name the layers with lora_target_modules=NAME,NAME (module names from the model), "
                "or train without lora",
            )
    r = int(recipe.get("lora_r") or DEFAULTS["lora_r"])
    if r < 1:
        raise TaskToolError(f"lora_r must be at least 1, got {r}", "e.g. lora_r=8")
    dropout = recipe.get("lora_dropout")
    dropout = DEFAULTS["lora_dropout"] if dropout is None else float(dropout)
    if not 0 <= dropout < 1:
        raise TaskToolError(f"lora_dropout must be in [0, 1), got {dropout}", "e.g. lora_dropout=0.05")
    return LoraConfig(
        r=r,
        lora_alpha=float(recipe.get("lora_alpha") or 2 * r),
        lora_dropout=dropout,
        target_modules=targets if targets != ["all-linear"] else "all-linear",
        exclude_modules=(r"(?:" + "|".join(heads) + r")(?:\..*)?") if heads else None,
        modules_to_save=heads or None,
        task_type=TASK_TYPES.get(model_class),
        fan_in_fan_out=_conv1d_only(model, targets),
    )


def _conv1d_only(model, targets) -> bool:
    """GPT-2 style Conv1D layers store weights transposed: peft must know (it warns and guesses otherwise)."""
    from transformers.pytorch_utils import Conv1D

    chosen = [m for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in set(targets)]
    return bool(chosen) and all(isinstance(m, Conv1D) for m in chosen)


def wrap(model, recipe: dict, model_class: str, base_ref: str | None = None):
    """The model with LoRA adapters (peft), only those (and the task head) trainable; returns
    (peft model, {"trainable": n, "total": n, "targets": [...]})."""
    from peft import get_peft_model

    if is_peft(model):  # --model was an adapter folder: train that adapter on
        trainable, total = model.get_nb_trainable_parameters()
        config = model.peft_config["default"]
        return model, {
            "trainable_parameters": int(trainable),
            "total_parameters": int(total),
            "lora_targets": sorted(config.target_modules)
            if not isinstance(config.target_modules, str)
            else [config.target_modules],
            "lora_r": config.r,
            "lora_alpha": config.lora_alpha,
        }
    config = lora_config(model, recipe, model_class)
    if quantization(recipe):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)  # peft asks transformers' old names
            peft_model = get_peft_model(model, config)
    except (ValueError, TypeError) as exc:
        first = first_line(exc)
        raise TaskToolError(
            f"lora: cannot put adapters on {sorted(config.target_modules)}: {first}",
            "name the model's linear layers with lora_target_modules=NAME,NAME",
        ) from exc
    if base_ref and Path(base_ref).expanduser().is_dir():
        # the adapter records where its base is: an absolute path keeps working from any folder
        peft_model.peft_config["default"].base_model_name_or_path = str(Path(base_ref).expanduser().resolve())
    trainable, total = peft_model.get_nb_trainable_parameters()
    targets = sorted(config.target_modules) if not isinstance(config.target_modules, str) else ["all-linear"]
    return peft_model, {
        "trainable_parameters": int(trainable),
        "total_parameters": int(total),
        "lora_targets": targets,
        "lora_r": config.r,
        "lora_alpha": config.lora_alpha,
    }


def is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(model, PeftModel)


def base_of(model):
    """The transformers model inside a peft wrapper (the model itself otherwise): speed patches go there."""
    return model.get_base_model() if is_peft(model) else model


def save_config(model, folder: Path) -> None:
    """The base model's config (task head size, labels) beside the adapter, so it loads with its head."""
    base = base_of(model)
    config = base.config
    config.architectures = [type(base).__name__]
    config.save_pretrained(str(folder))
    generation = getattr(base, "generation_config", None)
    if generation is not None and base.can_generate():
        generation.save_pretrained(str(folder))
