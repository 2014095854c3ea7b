"""CPU fine-tuning's cheaper dropout: the same distribution, and attention that masks exactly as SDPA does."""

from __future__ import annotations

import json

import pytest

from tasktool.accel import fast_dropout


def test_keep_mask_drops_p_independently_and_follows_the_seed():
    import torch

    torch.manual_seed(0)
    dropped = 1 - fast_dropout.keep_mask((1000, 1000), 0.1, torch.float32).flatten()
    assert dropped.mean().item() == pytest.approx(0.1, abs=0.002)
    # neighbours come from the same 64-bit draw: they must still be uncorrelated
    for lag in (1, 2, 3, 4):
        corr = torch.corrcoef(torch.stack([dropped[:-lag], dropped[lag:]]))[0, 1].item()
        assert abs(corr) < 0.005, lag
    torch.manual_seed(3)
    a = fast_dropout.keep_mask((7, 5), 0.5, torch.float32)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    # the same bits in every dtype the activations come in, and the same again for the same seed
    for dtype in (torch.float32, torch.bfloat16):
        torch.manual_seed(3)
        keep = fast_dropout.keep_mask((7, 5), 0.5, dtype)
        assert keep.dtype == dtype and torch.equal(keep.float(), a)


def test_cpu_dropout_zeroes_p_and_rescales_the_rest_in_training_only():
    import torch

    layer = fast_dropout._module_class()(0.25)
    x = torch.ones(400, 500, requires_grad=True)
    y = layer(x)
    assert (y == 0).float().mean().item() == pytest.approx(0.25, abs=0.005)
    assert sorted(y.unique().tolist()) == [0.0, pytest.approx(1 / 0.75)]
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # the gradient goes through the kept elements only
    layer.eval()
    assert layer(x) is x


def _batch(tokenizer, texts):
    return tokenizer(texts, padding=True, return_tensors="pt")


TEXTS = ["a good film", "the worst movie of the year and far too long really", "ok then"]


@pytest.mark.parametrize(
    ("task", "auto"),
    [
        ("text-classification", "AutoModelForSequenceClassification"),  # BERT: padding mask
        ("text-generation", "AutoModelForCausalLM"),  # GPT-2: causal + padding
        ("summarization", "AutoModelForSeq2SeqLM"),  # BART: encoder, causal decoder, cross-attention
    ],
)
def test_training_attention_equals_sdpa_when_nothing_is_dropped(tiny, nothing_dropped, task, auto):
    """With the mask forced to keep everything, our train-mode path must give SDPA's eval-mode logits."""
    import torch
    import transformers

    path = tiny(task)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    cls = getattr(transformers, auto)
    # BART drops hidden states functionally (not ours): only its attention dropout is on here
    extra = (
        {"attention_dropout": 0.1, "dropout": 0.0, "activation_dropout": 0.0}
        if task == "summarization"
        else {}
    )
    reference = cls.from_pretrained(path, attn_implementation="sdpa", **extra).eval()
    model = cls.from_pretrained(path, attn_implementation="sdpa", **extra)
    assert fast_dropout.apply(model)
    state = fast_dropout.state(model)
    assert state["attention"] and (state["dropouts"] > 0 or task == "summarization")
    model.train()
    batch = _batch(tokenizer, TEXTS)
    if task == "summarization":
        batch["decoder_input_ids"] = batch["input_ids"][:, :4]
    with torch.no_grad():
        want = reference(**batch).logits
        got = model(**batch).logits
    assert nothing_dropped  # the cheap path ran
    # padded positions of a causal LM are never read: compare the real tokens
    keep = batch["attention_mask"].bool() if task == "text-generation" else slice(None)
    assert torch.allclose(got[keep], want[keep], atol=1e-5)


def test_remove_restores_sdpa_so_the_saved_config_names_no_tasktool_attention(tiny, tmp_path):
    import transformers

    model = transformers.AutoModelForSequenceClassification.from_pretrained(tiny("text-classification"))
    assert fast_dropout.apply(model)
    assert model.config._attn_implementation == fast_dropout.NAME
    fast_dropout.remove(model)
    assert fast_dropout.state(model) is None
    assert model.config._attn_implementation == "sdpa"
    model.save_pretrained(tmp_path)
    assert fast_dropout.NAME not in json.dumps(json.loads((tmp_path / "config.json").read_text()))


def test_optimizer_auto_is_fused_adamw_and_a_name_passes_through():
    from tasktool.training.arguments import optimizer_name

    assert optimizer_name("auto") == "adamw_torch_fused"  # torch >= 2.4 on CPU
    assert optimizer_name("adafactor") == "adafactor"
