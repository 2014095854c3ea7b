"""bf16 CPU inference with GELU and residual adds folded into oneDNN matmuls: same outputs, bf16 only."""

from __future__ import annotations

import pytest

from tasktool.accel import cpu_fusion

TEXTS = ["a good film", "the worst movie of the year and far too long really", "ok", "fine then, I suppose"]


def _models(path, auto, dtype):
    import transformers

    cls = getattr(transformers, auto)
    return cls.from_pretrained(path, dtype=dtype).eval(), cls.from_pretrained(path, dtype=dtype).eval()


@pytest.mark.parametrize(
    ("task", "auto"),
    [
        ("text-classification", "AutoModelForSequenceClassification"),
        ("ner", "AutoModelForTokenClassification"),
        ("qa", "AutoModelForQuestionAnswering"),
    ],
)
def test_fused_bf16_model_gives_the_same_outputs(tiny, task, auto):
    import torch
    import transformers

    if not cpu_fusion.available():
        pytest.skip("this PyTorch build has no oneDNN linear")
    path = tiny(task)
    plain, fused = _models(path, auto, torch.bfloat16)
    layers = plain.config.num_hidden_layers
    assert cpu_fusion.apply(fused)
    # per layer: feed-forward, its output, attention output
    assert sum(cpu_fusion.fused(m) for m in fused.modules()) == 3 * layers
    assert fused.state_dict().keys() == plain.state_dict().keys()
    reference = getattr(transformers, auto).from_pretrained(path, dtype=torch.float32).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        want, got, exact = (m(**batch) for m in (plain, fused, reference))
    for name in ("logits", "start_logits", "end_logits"):
        if name in want:
            # the fused path rounds to bf16 once less: it is at least as close to float32 as plain bf16
            err_plain = (want[name].float() - exact[name]).abs().max()
            err_fused = (got[name].float() - exact[name]).abs().max()
            assert err_fused <= 2 * err_plain + 1e-2, (name, err_fused, err_plain)
            assert torch.allclose(got[name].float(), want[name].float(), atol=0.05, rtol=0.05)
    cpu_fusion.remove(fused)
    assert not any("forward" in vars(m) for m in fused.modules())


def test_float32_training_and_other_architectures_are_left_alone(tiny):
    import torch
    import transformers

    path = tiny("text-classification")
    fp32, _ = _models(path, "AutoModelForSequenceClassification", torch.float32)
    assert not cpu_fusion.apply(fp32)  # float32 measured no faster
    bf16, _ = _models(path, "AutoModelForSequenceClassification", torch.bfloat16)
    assert not cpu_fusion.apply(bf16.train())  # training keeps its dropout
    gpt2 = transformers.AutoModelForCausalLM.from_pretrained(tiny("text-generation"), dtype=torch.bfloat16)
    assert not cpu_fusion.apply(gpt2.eval())
    assert not any("forward" in vars(m) for m in (*fp32.modules(), *bf16.modules(), *gpt2.modules()))


def test_bf16_infer_runs_fused_and_scores_match_float32(cli, tiny):
    from tasktool.inference import build_predictor
    from tasktool.options import InferOptions
    from tasktool.tasks.registry import resolve

    if not cpu_fusion.available():
        pytest.skip("this PyTorch build has no oneDNN linear")
    path = tiny("text-classification")
    predictor = build_predictor(
        resolve("text-classification"), InferOptions(model=path, device="cpu", dtype="bfloat16")
    )
    assert any("forward" in vars(m) for m in predictor.model.base_model.encoder.modules())
    got = cli("infer", "text-classification", *TEXTS, "--model", path, "--dtype", "bfloat16", "--top-k", "2")
    want = cli("infer", "text-classification", *TEXTS, "--model", path, "--top-k", "2")
    assert got.code == 0 and want.code == 0, got.err + want.err
    for a, b in zip(got.records(), want.records(), strict=True):
        scores = {x["label"]: x["score"] for x in a["labels"]}
        assert all(abs(scores[x["label"]] - x["score"]) < 0.02 for x in b["labels"])
