"""text-classification inference through the CLI with a tiny random BERT."""

from __future__ import annotations

import pytest
from conftest import assert_user_error

LABELS = ["NEG", "POS"]
TEXTS = ["a wonderful film", "the worst movie of the year and far too long", "ok", "great story, good music"]


@pytest.fixture(scope="module")
def model(tiny):
    return tiny("text-classification", labels=LABELS)


def _check(records, texts):
    assert [r["input"] for r in records] == texts
    assert [r["id"] for r in records] == list(range(len(texts)))
    for r in records:
        assert r["label"] in LABELS and 0.0 <= r["score"] <= 1.0


def test_literal_texts_give_one_record_each_in_order(cli, model):
    result = cli("infer", "sentiment", *TEXTS, "--model", model)
    assert result.code == 0, result.err
    _check(result.records(), TEXTS)


def test_batched_equals_unbatched(cli, model):
    one = cli("infer", "sentiment", *TEXTS, "--model", model, "--batch-size", "1", "--top-k", "2").records()
    many = cli("infer", "sentiment", *TEXTS, "--model", model, "--batch-size", "3", "--top-k", "2").records()
    assert [r["label"] for r in one] == [r["label"] for r in many]
    for a, b in zip(one, many, strict=True):
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)


def test_missing_column_lists_the_columns_found(cli, model, tmp_path):
    table = tmp_path / "in.csv"
    table.write_text("review,stars\nfine,5\n")
    result = cli("infer", "sentiment", "--file", table, "--column", "txt", "--model", model)
    assert_user_error(result, "column 'txt' not found", "review", "stars")


def test_missing_file_is_a_one_line_error(cli, model, tmp_path):
    assert_user_error(
        cli("infer", "sentiment", "--file", tmp_path / "nope.csv", "--model", model), "not found"
    )


def test_empty_input_is_a_one_line_error(cli, model, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert_user_error(cli("infer", "sentiment", "--file", empty, "--model", model), "no inputs")


def test_model_for_another_task_is_refused(cli, tiny):
    ner = tiny("token-classification", labels=["O", "B-PER", "I-PER"])
    result = cli("infer", "sentiment", "hello", "--model", ner)
    assert_user_error(result, "token-classification model", "not a text-classification model")
