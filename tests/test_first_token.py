"""The last layer computed for the first token only gives the classifier the same logits."""

from __future__ import annotations

import pytest

from tasktool.accel import first_token

TEXTS = ["a good film", "the worst movie of the year and far too long really", "ok", "fine then, I suppose"]


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_first_token_layer_gives_the_full_models_logits(tiny, implementation):
    import torch
    import transformers

    path = tiny("text-classification")
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    cls = transformers.AutoModelForSequenceClassification
    full = cls.from_pretrained(path, attn_implementation=implementation).eval()
    fast = cls.from_pretrained(path, attn_implementation=implementation).eval()
    assert first_token.apply(fast)
    assert "forward" in vars(fast.base_model.encoder.layer[-1])
    assert fast.state_dict().keys() == full.state_dict().keys()  # weights and names untouched
    with torch.inference_mode():
        for texts in (TEXTS, TEXTS[:1], [TEXTS[1]] * 2):  # padded, single, no padding
            batch = tokenizer(texts, padding=True, return_tensors="pt")
            want, got = full(**batch).logits, fast(**batch).logits
            assert torch.allclose(got, want, atol=1e-5), (texts, got, want)


def test_training_with_it_gives_the_full_models_loss_and_gradients(tiny):
    import copy

    import torch
    import transformers

    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        tiny("text-classification"), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    ).train()
    fast = copy.deepcopy(model)
    assert first_token.apply(fast, training=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny("text-classification"))
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    batch["labels"] = torch.tensor([1, 0, 1, 0])
    grads = []
    for m in (model, fast):
        loss = m(**batch).loss
        loss.backward()
        grads.append((loss.detach(), {n: p.grad for n, p in m.named_parameters()}))
    (want_loss, want), (got_loss, got) = grads
    assert torch.allclose(got_loss, want_loss, atol=1e-6)
    assert all(got[n] is not None for n in want)  # every weight still learns (DDP needs that too)
    for name, grad in want.items():
        assert torch.allclose(got[name], grad, atol=1e-6, rtol=1e-4), name
    first_token.remove(fast)
    assert "forward" not in vars(fast.base_model.encoder.layer[-1])


def test_training_attention_goes_through_the_models_dropout_path(tiny, nothing_dropped):
    """With tasktool's CPU dropout installed and told to drop nothing, the first-token layer trains exactly."""
    import copy

    import torch
    import transformers

    from tasktool.accel import fast_dropout

    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        tiny("text-classification")
    ).train()
    fast = copy.deepcopy(model)
    for m in (model, fast):
        assert fast_dropout.apply(m) and fast_dropout.state(m)["attention"]
    assert first_token.apply(fast, training=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny("text-classification"))
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    want, got = model(**batch).logits, fast(**batch).logits
    assert any(
        len(shape) == 4 and shape[2] == 1 for shape, _ in nothing_dropped
    )  # the one-query attention ran there
    assert torch.allclose(got, want, atol=1e-5)


def test_models_in_training_or_with_other_heads_are_left_alone(tiny):
    import transformers

    model = transformers.AutoModelForSequenceClassification.from_pretrained(tiny("text-classification"))
    assert not first_token.apply(model.train())  # training needs every position's gradient path intact
    tagger = transformers.AutoModelForTokenClassification.from_pretrained(
        tiny("token-classification", labels=["O", "B-PER", "I-PER"])
    ).eval()
    assert not first_token.apply(tagger)  # every token is labelled: nothing to skip


def test_infer_labels_match_the_pipeline_on_the_same_model(cli, tiny, tmp_path):
    import json

    import transformers

    path = tiny("text-classification")
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS * 3))
    result = cli("infer", "text-classification", "--file", src, "--model", path, "--batch-size", "5")
    assert result.code == 0, result.err
    pipe = transformers.pipeline("text-classification", model=str(path), device="cpu")
    assert [r["label"] for r in result.records()] == [r["label"] for r in pipe(TEXTS * 3)]
