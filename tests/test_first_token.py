"""The last layer computed for the first token only gives the classifier the same logits."""

from __future__ import annotations

import pytest

from tasktool.tasks import first_token

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
    assert type(fast.base_model.encoder.layer[-1]).__name__ == "FirstTokenLayer"
    with torch.inference_mode():
        for texts in (TEXTS, TEXTS[:1], [TEXTS[1]] * 2):  # padded, single, no padding
            batch = tokenizer(texts, padding=True, return_tensors="pt")
            want, got = full(**batch).logits, fast(**batch).logits
            assert torch.allclose(got, want, atol=1e-5), (texts, got, want)


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
