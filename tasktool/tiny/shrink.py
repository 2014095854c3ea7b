"""Smoke mode's model and run size: the real code path with a shrunk model and a handful of examples.

`shrunk_model` keeps what the real run would check (architecture family, label set, tokenizer or
processor) and drops the size: fewer layers, narrow hidden sizes, random weights. No network.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

SMOKE_EXAMPLES = 8
SMOKE_STEPS = 3

_LAYERS = (
    "num_hidden_layers",
    "num_layers",
    "n_layer",
    "encoder_layers",
    "decoder_layers",
    "num_decoder_layers",
)
_HEADS = (
    "num_attention_heads",
    "n_head",
    "encoder_attention_heads",
    "decoder_attention_heads",
    "num_heads",
    "num_key_value_heads",
)
_WIDTH = ("hidden_size", "d_model", "n_embd")
_FFN = ("intermediate_size", "d_ff", "encoder_ffn_dim", "decoder_ffn_dim", "n_inner")
_TEXT_FAMILIES = ("bert", "gpt2", "bart", "t5", "marian", "llama")
_PROCESSOR_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "source.spm",
    "target.spm",
    "sentencepiece.bpe.model",
    "preprocessor_config.json",
    "processor_config.json",
    "added_tokens.json",
    "generation_config.json",
    "chat_template.jinja",
)


def shrink_config(config):
    """Fewer layers and narrow sizes; labels, vocabulary and special tokens stay as they are."""
    for name in _LAYERS:
        if isinstance(getattr(config, name, None), int):
            setattr(config, name, min(getattr(config, name), 2))
    for name in _HEADS:
        if isinstance(getattr(config, name, None), int):
            setattr(config, name, 2)
    for name in _WIDTH:
        if isinstance(getattr(config, name, None), int):
            setattr(config, name, 32)
    for name in _FFN:
        if isinstance(getattr(config, name, None), int):
            setattr(config, name, 64)
    if isinstance(getattr(config, "d_kv", None), int):
        config.d_kv = 16
    if hasattr(config, "embedding_size") and isinstance(config.embedding_size, int):
        config.embedding_size = 32
    return config


# What a text model's position table holds when the real model's is unknown (a Hub id, offline): the
# common limit of the default checkpoints (BERT, DistilBERT, T5 tokenizers), so the recipe's lengths fit.
SMOKE_POSITIONS = 512
_LENGTH_KEYS = ("max_length", "max_target_length", "block_size")


def smoke_positions(recipe: dict | None) -> int:
    """Positions the shrunk model needs for the real run's lengths (the recipe's longest, 512 at least)."""
    wanted = [int(recipe[k]) for k in _LENGTH_KEYS if recipe and str(recipe.get(k) or "").isdigit()]
    return max([SMOKE_POSITIONS, *wanted])


def shrunk_model(
    spec,
    model_ref: str | None,
    out_dir: Path,
    revision: str | None = None,
    positions: int | None = None,
    labels: list[str] | None = None,
) -> Path:
    """A small random model standing in for `model_ref`: its own config shrunk when that config is local
    (text families; the position table and tokenizer stay the real model's, so lengths behave as in the
    real run), otherwise the task family's tiny default with `positions` positions (512 at least) and
    `labels` (the data's, when the real model's are unknown)."""
    out_dir = Path(out_dir)
    text = spec.family in _TEXT_FAMILIES
    sized = {"max_length": max(SMOKE_POSITIONS, positions or 0)} if text else {}
    local = Path(model_ref).expanduser() if model_ref else None
    if (
        local is not None
        and local.is_dir()
        and (local / "config.json").exists()
        and spec.family in _TEXT_FAMILIES
    ):
        import torch
        import transformers

        from tasktool import runtime

        config = shrink_config(runtime.load_config(str(local), revision))
        runtime.check_compatible(spec, config, str(local))
        out_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        model = getattr(transformers, spec.model_class).from_config(config)
        model.save_pretrained(out_dir)
        for name in _PROCESSOR_FILES:
            if (local / name).exists():
                shutil.copy2(local / name, out_dir / name)
        return out_dir
    if local is not None and local.is_dir():
        from tasktool import runtime

        config = runtime.load_config(str(local), revision)
        runtime.check_compatible(spec, config, str(local))
        labels = (
            [config.id2label[i] for i in sorted(config.id2label)]
            if getattr(config, "id2label", None)
            else None
        )
        return spec.build_tiny(out_dir, labels=labels, **sized)
    return spec.build_tiny(out_dir, **({"labels": labels} if labels else {}), **sized)


def smoke_recipe(recipe: dict) -> dict:
    """A few steps on a few examples; everything else (columns, labels, lengths) as the real run."""
    recipe.update(
        max_steps=SMOKE_STEPS,
        max_train_samples=2 * SMOKE_EXAMPLES,
        max_eval_samples=SMOKE_EXAMPLES,
        eval_steps=None,
        save_steps=None,
        logging_steps=1,
    )
    for key in ("generation_max_new_tokens", "max_target_length"):  # short generations: shape checks only
        if recipe.get(key):
            recipe[key] = min(int(recipe[key]), 8)
    if recipe.get("num_beams"):
        recipe["num_beams"] = 1
    return recipe


def smoke_dir(prefix: str = "tasktool-smoke-", keep: bool = False) -> Path:
    """A temporary folder for a smoke run; removed when the process ends unless `keep` (then named)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if keep:
        from tasktool.console import info

        info(f"smoke run: keeping its files in {folder}")
    else:
        import atexit

        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
