"""tasktool.accel: each patch stays off where it does not know the model, the entry points say what they
applied and why the rest stayed off, a fine-tuning run reports and records it, and an untested
transformers release turns every patch off."""

from __future__ import annotations

import json
import logging
import re
import types
from pathlib import Path

import pytest

from tasktool import accel
from tasktool.accel import cpu_fusion, fast_dropout, first_token, layers, packed_encoder

ROOT = Path(__file__).resolve().parent.parent
TEXTS = ["a good film", "the worst movie of the year and far too long", "yes"]


def _instance_forwards(model) -> list[str]:
    return [name for name, m in model.named_modules() if "forward" in vars(m)]


def _bert(tiny, train: bool = True):
    import transformers

    model = transformers.AutoModelForSequenceClassification.from_pretrained(tiny("text-classification"))
    return model.train() if train else model.eval()


def _esm():
    """ESM: rotary positions inside attention, pre-LayerNorm blocks; its layers have BERT's attribute names."""
    import transformers

    config = transformers.EsmConfig(
        vocab_size=33,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        position_embedding_type="rotary",
        pad_token_id=1,
        mask_token_id=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return transformers.EsmForTokenClassification(config).eval()


# ---------------------------------------------------------------- each patch off on a model it does not know


def test_each_patch_returns_false_and_leaves_an_unknown_model_alone(tiny):
    import torch
    import transformers

    path = tiny("text-generation")
    gpt2 = transformers.AutoModelForCausalLM.from_pretrained(path).train()
    assert not packed_encoder.apply(gpt2)
    assert not first_token.apply(gpt2, training=True)
    assert not first_token.apply(gpt2.eval())
    bf16 = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).eval()
    assert not cpu_fusion.apply(bf16)
    # nothing for fast_dropout to swap: no dropout with p > 0, and attention that is not SDPA
    plain = transformers.AutoModelForCausalLM.from_pretrained(
        path, attn_implementation="eager", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0
    )
    assert not fast_dropout.apply(plain)
    assert fast_dropout.state(plain) is None and plain.config._attn_implementation == "eager"
    for model in (gpt2, bf16, plain):
        assert _instance_forwards(model) == []


def test_each_patch_returns_true_on_the_models_it_knows(tiny):
    import torch
    import transformers

    assert packed_encoder.apply(_bert(tiny))
    assert first_token.apply(_bert(tiny, train=False))
    assert fast_dropout.apply(_bert(tiny))
    if cpu_fusion.available():
        bf16 = transformers.AutoModelForSequenceClassification.from_pretrained(
            tiny("text-classification"), dtype=torch.bfloat16
        ).eval()
        assert cpu_fusion.apply(bf16)
    distil = transformers.DistilBertForTokenClassification(
        transformers.DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=37)
    )
    assert packed_encoder.apply(distil)
    roberta = transformers.RobertaForTokenClassification(
        transformers.RobertaConfig(
            vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37
        )
    )
    assert packed_encoder.apply(roberta)


# ---------------------------------------------------------------- the packed encoder's guard


def test_transformers_5_bert_has_no_relative_positions_so_the_guard_checks_the_attention_class():
    """transformers 5 dropped BERT's relative position embeddings: the config key is read by nothing."""
    import transformers

    assert not hasattr(transformers.BertConfig(), "position_embedding_type")
    config = transformers.BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        position_embedding_type="relative_key",  # a leftover key of an old checkpoint's config.json
    )
    model = transformers.BertForTokenClassification(config)
    assert not any("distance_embedding" in name for name, _ in model.named_parameters())
    assert packed_encoder.apply(model)  # the model computes absolute positions, as the packed forward does


def test_the_guard_fires_on_layers_that_look_like_berts_but_compute_something_else():
    import torch
    import transformers

    esm = _esm()
    layer = esm.base_model.encoder.layer[0]
    # the attribute names the earlier check looked for are all there...
    assert all(hasattr(layer.attention.self, n) for n in ("query", "key", "value", "num_attention_heads"))
    assert hasattr(layer, "intermediate") and hasattr(layer, "output")
    # ...but the class is not BERT's (rotary positions inside attention, pre-LayerNorm): refused
    assert not layers.is_bert_layer(layer)
    assert not packed_encoder.apply(esm)
    assert _instance_forwards(esm) == []

    prenorm = transformers.RobertaPreLayerNormForTokenClassification(
        transformers.RobertaPreLayerNormConfig(
            vocab_size=100,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            initializer_range=0.5,  # weights big enough that each layer's output shows in the logits
        )
    ).eval()
    assert not packed_encoder.apply(prenorm)
    # and it must be: the packed forward, forced onto the pre-LayerNorm encoder, computes other values
    # (it skips the LayerNorm before attention)
    ids = torch.tensor([[0, 5, 6, 7, 8, 2], [0, 9, 10, 2, 1, 1]])
    mask = (ids != 1).long()
    with torch.no_grad():
        want = prenorm(input_ids=ids, attention_mask=mask).logits
        encoder = prenorm.base_model.encoder
        encoder.forward = types.MethodType(packed_encoder._forward, encoder)
        with packed_encoder.rows_of(mask):
            got = prenorm(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()
    assert not torch.allclose(got[real], want[real], atol=0.1)

    # LayoutLMv3 adds a relative position bias inside attention (the encoder computes it)
    layout = transformers.LayoutLMv3ForTokenClassification(
        transformers.LayoutLMv3Config(
            vocab_size=100,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            visual_embed=False,
        )
    )
    assert not packed_encoder.apply(layout)


# ---------------------------------------------------------------- the version gate


def test_pyproject_pins_the_tested_transformers_range():
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'"transformers>=5\.25,<5\.26"', text)
    assert layers.tested_range() == ">=5.25,<5.26"


@pytest.mark.parametrize("version", ["5.26.0", "5.24.2", "5.26.0.dev0", "6.0.0"])
def test_an_untested_transformers_keeps_every_patch_off_and_says_so(tiny, monkeypatch, version):
    import torch
    import transformers

    monkeypatch.setattr(transformers, "__version__", version)
    model = _bert(tiny)
    assert not packed_encoder.apply(model)
    assert not first_token.apply(model, training=True)
    assert not fast_dropout.apply(model)
    bf16 = transformers.AutoModelForSequenceClassification.from_pretrained(
        tiny("text-classification"), dtype=torch.bfloat16
    ).eval()
    assert not cpu_fusion.apply(bf16)
    assert _instance_forwards(model) == [] and _instance_forwards(bf16) == []
    assert model.config._attn_implementation == "sdpa"

    done = accel.apply_for_training(model, device_type="cpu", recipe={}, loss_units="rows", batch_size=32)
    assert done.applied == []
    assert set(done.off) == {"fast_dropout", "packed_encoder", "first_token", "micro_batches"}
    for why in done.off.values():
        assert f"transformers {version} is outside the tested range >=5.25,<5.26" == why
    assert done.trainer_class(transformers.Trainer) is transformers.Trainer
    inference = accel.apply_for_inference(bf16, compile=False)
    assert inference.applied == [] and "outside the tested range" in inference.off["cpu_fusion"]


def test_a_tested_patch_release_is_in_range(monkeypatch):
    import transformers

    monkeypatch.setattr(transformers, "__version__", "5.25.3")
    assert layers.untested_transformers() is None


# ---------------------------------------------------------------- the entry points and their line


def test_applied_line_names_the_patches_and_why_the_rest_stayed_off():
    done = accel.Applied(
        applied=["fast_dropout", "packed_encoder", "first_token"],
        off={"micro_batches": "packed encoder has no padding to shed"},
    )
    assert done.line() == (
        "speed patches: fast_dropout, packed_encoder, first_token "
        "(off: micro_batches: packed encoder has no padding to shed)"
    )
    assert done.record() == {
        "event": "speed_patches",
        "applied": ["fast_dropout", "packed_encoder", "first_token"],
        "off": {"micro_batches": "packed encoder has no padding to shed"},
    }
    two_off = accel.Applied(off={"cpu_fusion": "not on CPU", "first_token": "not a classifier"})
    assert (
        two_off.line() == "speed patches: none (off: cpu_fusion: not on CPU; first_token: not a classifier)"
    )
    assert accel.Applied(applied=["first_token"]).line() == "speed patches: first_token"


def test_training_on_cpu_applies_the_patches_and_remove_undoes_them(tiny):
    import torch
    import transformers

    model = _bert(tiny)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the batch stays whole under the packed encoder
    try:
        done = accel.apply_for_training(model, device_type="cpu", recipe={}, loss_units="rows", batch_size=32)
    finally:
        torch.set_num_threads(threads)
    assert done.line() == (
        "speed patches: fast_dropout, packed_encoder, first_token "
        "(off: micro_batches: packed encoder has no padding to shed)"
    )
    assert model.config._attn_implementation == fast_dropout.NAME
    assert first_token.applied_to(model.bert.encoder.layer[-1])
    cls = done.trainer_class(transformers.Trainer)
    assert cls is not transformers.Trainer and issubclass(cls, transformers.Trainer)  # passes rows_of
    done.remove()
    assert _instance_forwards(model) == []
    assert model.config._attn_implementation == "sdpa"
    assert fast_dropout.state(model) is None


def test_training_with_two_threads_deals_the_rows_out(tiny):
    import torch

    model = _bert(tiny)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        done = accel.apply_for_training(model, device_type="cpu", recipe={}, loss_units="rows", batch_size=32)
    finally:
        torch.set_num_threads(threads)
    assert done.applied == [
        "fast_dropout",
        "packed_encoder",
        "first_token",
        "micro_batches",
        "concurrent_micro_batches",
    ]
    assert done.off == {} and done.concurrent and done.packed and done.micro_batches == 2
    done.remove()


def test_training_reasons_for_patches_left_off(tiny):
    from tasktool.errors import TaskToolError

    gpu = accel.apply_for_training(
        _bert(tiny), device_type="cuda", recipe={}, loss_units="rows", batch_size=32
    )
    assert gpu.applied == ["first_token"]  # same loss and gradients on any device
    assert gpu.off == {
        "fast_dropout": "not on CPU",
        "packed_encoder": "not on CPU",
        "micro_batches": "not on CPU",
    }
    recipe = {"fast_dropout": False, "packed_encoder": False, "micro_batches": "2"}
    model = _bert(tiny)
    by_recipe = accel.apply_for_training(
        model, device_type="cpu", recipe=recipe, loss_units="rows", batch_size=8
    )
    assert by_recipe.applied == ["first_token", "micro_batches"]
    assert by_recipe.off["fast_dropout"] == "off (recipe)"
    assert by_recipe.off["packed_encoder"] == "off (recipe)"
    assert by_recipe.off["concurrent_micro_batches"].startswith("needs fast_dropout")
    assert by_recipe.micro_batches == 2 and not by_recipe.concurrent
    small = accel.apply_for_training(_bert(tiny), device_type="cpu", recipe={}, loss_units=None, batch_size=8)
    assert small.off["packed_encoder"] == "the task's batches stay whole"
    assert small.off["micro_batches"] == "the task's batches stay whole"
    auto = accel.apply_for_training(
        _bert(tiny), device_type="cpu", recipe={"packed_encoder": False}, loss_units="rows", batch_size=8
    )
    assert auto.off["micro_batches"] == "batch of 8 (auto splits 16+)"
    with pytest.raises(TaskToolError, match="micro_batches"):
        accel.apply_for_training(
            _bert(tiny), device_type="cpu", recipe={"micro_batches": "x"}, loss_units="rows", batch_size=8
        )


def test_inference_applies_first_token_and_logs_at_debug_level_only(tiny, caplog, capsys):
    from tasktool.inference import build_predictor
    from tasktool.options import InferOptions
    from tasktool.tasks.registry import resolve

    path = tiny("text-classification")
    with caplog.at_level(logging.DEBUG, logger="tasktool.accel"):
        predictor = build_predictor(resolve("text-classification"), InferOptions(model=path, device="cpu"))
    assert predictor.applied.applied == ["first_token"]
    assert predictor.applied.off == {"cpu_fusion": "not bf16 (float32 gains nothing)"}
    assert "speed patches: first_token (off: cpu_fusion: not bf16" in caplog.text
    assert "speed patches" not in capsys.readouterr().err
    tagger = build_predictor(resolve("token-classification"), InferOptions(model=tiny("ner"), device="cpu"))
    assert tagger.applied.off["first_token"] == "not a BERT-style sentence classifier"
    compiled = accel.apply_for_inference(_bert(tiny, train=False), compile=True)
    assert compiled.off["cpu_fusion"] == "--compile (inductor fuses for itself)"


# ---------------------------------------------------------------- a fine-tuning run reports and records them


def _rows(n: int):
    import random

    from tasktool.tiny.text import WORDS

    rng = random.Random(0)
    return [
        {"text": " ".join(rng.choices(WORDS, k=rng.randint(4, 12))), "label": "yes" if i % 2 else "no"}
        for i in range(n)
    ]


def test_finetune_prints_the_speed_patches_line_and_records_it(cli, tiny, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _rows(40)))
    base = tiny("text-classification", labels=["no", "yes"])
    args = ["--data", data, "--model", base, "--max-steps", "2", "--batch-size", "8"]
    extra = ["warmup_ratio=0", "save_steps=1000", "logging_steps=1"]
    result = cli("finetune", "sentiment", *args, "--output-dir", tmp_path / "m", *extra)
    assert result.code == 0, result.err
    lines = [ln for ln in result.err.splitlines() if ln.startswith("speed patches:")]
    assert len(lines) == 1, result.err
    line = lines[0]
    assert line.startswith("speed patches: fast_dropout, packed_encoder, first_token"), line
    out = tmp_path / "m"
    log = [json.loads(ln) for ln in (out / "train_log.jsonl").read_text().splitlines()]
    records = [r for r in log if r.get("event") == "speed_patches"]
    assert len(records) == 1
    assert records[0]["applied"] == ["fast_dropout", "packed_encoder", "first_token"]
    assert set(records[0]["off"]) == {"micro_batches"}
    train = json.loads((out / "metrics.json").read_text())["train"]
    assert train["speed_patches"] == records[0]["applied"]
    assert train["speed_patches_off"] == records[0]["off"]
    card = (out / "README.md").read_text()
    assert "- **Speed patches:** fast_dropout, packed_encoder, first_token (off: micro_batches:" in card
    # the saved model has its own forwards and attention (the patches were removed before saving)
    config = json.loads((out / "config.json").read_text())
    assert fast_dropout.NAME not in json.dumps(config)

    quiet = cli("finetune", "sentiment", *args, "--output-dir", tmp_path / "q", "--quiet", *extra)
    assert quiet.code == 0, quiet.err
    assert "speed patches" not in quiet.err
    assert "speed_patches" in (tmp_path / "q" / "train_log.jsonl").read_text()
