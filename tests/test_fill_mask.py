"""fill-mask inference through the CLI with a tiny random BERT masked LM."""

from __future__ import annotations

import pytest
from conftest import assert_user_error

TEXTS = [
    "the [MASK] film was good",
    "paris is a [MASK] city",
    "[MASK]",
    "john and mary went to the [MASK] on monday",
]


@pytest.fixture(scope="module")
def model(tiny):
    return tiny("fill-mask")


@pytest.fixture(scope="module")
def tokenizer(model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model)


def _check_fills(preds, text, tokenizer, k):
    assert len(preds) == k
    scores = [p["score"] for p in preds]
    assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
    assert len({p["token"] for p in preds}) == k
    for p in preds:
        assert p["token_str"] == tokenizer.decode([p["token"]]).strip()
        if not p["token_str"].startswith("##"):  # a whole word: the sentence reads with it in place
            assert p["sequence"] == text.replace("[MASK]", p["token_str"], 1)


def _check(records, texts, tokenizer, k=5):
    assert [r["input"] for r in records] == texts
    assert [r["id"] for r in records] == list(range(len(texts)))
    for r, text in zip(records, texts, strict=True):
        _check_fills(r["predictions"], text, tokenizer, k)


def test_literal_texts_give_top_k_fills(cli, model, tokenizer):
    result = cli("infer", "fill-mask", *TEXTS, "--model", model)
    assert result.code == 0, result.err
    _check(result.records(), TEXTS, tokenizer)
    three = cli("infer", "fill-mask", *TEXTS, "--model", model, "--top-k", "3").records()
    _check(three, TEXTS, tokenizer, k=3)
    assert [r["predictions"] for r in three] == [r["predictions"][:3] for r in result.records()]


def test_roberta_spelling_of_the_mask_is_accepted(cli, model):
    bert = cli("infer", "fill-mask", "the [MASK] film", "--model", model).records()[0]
    roberta = cli("infer", "fill-mask", "the <mask> film", "--model", model).records()[0]
    assert roberta["predictions"] == bert["predictions"]


def test_several_masks_give_one_list_per_mask(cli, model, tokenizer):
    text = "the [MASK] film was [MASK]"
    record = cli("infer", "fill-mask", text, "--model", model, "--top-k", "2").records()[0]
    first, second = record["predictions"]
    for preds in (first, second):
        assert len(preds) == 2 and all(0.0 <= p["score"] <= 1.0 for p in preds)
    word = next(p for p in first if not p["token_str"].startswith("##"))
    assert word["sequence"] == f"the {word['token_str']} film was [MASK]"  # the other mask stays
    word = next(p for p in second if not p["token_str"].startswith("##"))
    assert word["sequence"] == f"the [MASK] film was {word['token_str']}"


def test_batched_equals_unbatched(cli, model):
    one = cli("infer", "fill-mask", *TEXTS, "--model", model, "--batch-size", "1").records()
    many = cli("infer", "fill-mask", *TEXTS, "--model", model, "--batch-size", "3").records()
    for a, b in zip(one, many, strict=True):
        assert [p["token"] for p in a["predictions"]] == [p["token"] for p in b["predictions"]]
        assert [p["score"] for p in a["predictions"]] == pytest.approx(
            [p["score"] for p in b["predictions"]], abs=1e-5
        )


def test_text_without_a_mask_is_a_one_line_error_naming_the_mask(cli, model):
    assert_user_error(cli("infer", "fill-mask", "no mask here", "--model", model), "no mask token", "[MASK]")


def test_text_without_a_mask_is_skipped_with_an_error_record(cli, model):
    result = cli("infer", "fill-mask", "no mask here", "a [MASK] day", "--model", model, "--on-error", "skip")
    assert result.code == 0, result.err
    bad, good = result.records()
    assert "[MASK]" in bad["error"] and "predictions" not in bad
    assert len(good["predictions"]) == 5


def test_mask_cut_off_by_truncation_is_an_error(cli, model):
    text = " ".join(["word"] * 200) + " [MASK]"
    assert_user_error(cli("infer", "fill-mask", text, "--model", model), "past the first 128 tokens")


def test_table_lists_fills_per_mask(cli, model):
    from tasktool.options import InferOptions
    from tasktool.tasks.registry import resolve

    spec = resolve("fill-mask")
    predictor = spec.load_predictor()(spec, InferOptions(model=str(model)))
    one = {"predictions": [{"token_str": "good", "score": 0.5}, {"token_str": "bad", "score": 0.25}]}
    assert predictor.display(one) == {"predictions": "good (0.50), bad (0.25)"}
    two = {"predictions": [one["predictions"], one["predictions"][:1]]}
    assert predictor.display(two) == {"predictions": "good (0.50), bad (0.25) | good (0.50)"}
