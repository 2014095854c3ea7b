"""token-classification (NER) inference: entity grouping rules, and the CLI with a tiny random BERT."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_user_error

from tasktool.tasks.token_classification.predict import aggregate, simple_entities, split_tag

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
ID2LABEL = dict(enumerate(LABELS))
TEXTS = ["John Smith went to Paris.", "Mary saw London and Berlin in July", "unbelievably good", "ok"]


@pytest.fixture(scope="module")
def model(tiny):
    return tiny("ner", labels=LABELS)


def _tok(label: str, start: int, end: int, word_id: int, score: float = 0.9, index: int = 0) -> dict:
    probs = np.full(len(LABELS), (1 - score) / (len(LABELS) - 1))
    probs[LABELS.index(label)] = score
    return {"probs": probs, "index": index, "start": start, "end": end, "word_id": word_id}


# "John Smith visited Paris": John=B-PER, Smith=I-PER, visited=O, Par|is = B-LOC, I-PER
TEXT = "John Smith visited Paris"
TOKENS = [
    _tok("B-PER", 0, 4, 0, index=1),
    _tok("I-PER", 5, 10, 1, 0.8, index=2),
    _tok("O", 11, 18, 2, index=3),
    _tok("B-LOC", 19, 22, 3, 0.7, index=4),
    _tok("I-PER", 22, 24, 3, 0.95, index=5),
]


def test_simple_merges_b_and_i_tokens_of_one_tag_and_drops_o():
    entities = aggregate(TOKENS, ID2LABEL, TEXT, "simple")
    assert [(e["entity_group"], e["word"], e["start"], e["end"]) for e in entities] == [
        ("PER", "John Smith", 0, 10),
        ("LOC", "Par", 19, 22),
        ("PER", "is", 22, 24),  # simple works on tokens: a word may be split
    ]
    assert entities[0]["score"] == pytest.approx(0.85)


def test_b_prefix_starts_a_new_entity_even_after_the_same_tag():
    tokens = [_tok("B-PER", 0, 4, 0), _tok("B-PER", 5, 10, 1)]
    entities = aggregate(tokens, ID2LABEL, TEXT, "simple")
    assert [e["word"] for e in entities] == ["John", "Smith"]


def test_word_level_strategies_label_whole_words():
    first = aggregate(TOKENS, ID2LABEL, TEXT, "first")
    assert [(e["entity_group"], e["word"]) for e in first] == [("PER", "John Smith"), ("LOC", "Paris")]
    assert first[1]["score"] == pytest.approx(0.7)
    best = aggregate(TOKENS, ID2LABEL, TEXT, "max")  # "Paris": its surest token (I-PER, 0.95) decides
    assert [(e["entity_group"], e["word"]) for e in best] == [("PER", "John Smith"), ("PER", "Paris")]
    assert best[1]["score"] == pytest.approx(0.95)
    average = aggregate(TOKENS, ID2LABEL, TEXT, "average")  # I-PER (0.5125) beats B-LOC (0.356)
    assert [(e["entity_group"], e["word"]) for e in average] == [("PER", "John Smith"), ("PER", "Paris")]
    assert average[1]["score"] == pytest.approx((0.95 + 0.3 / 4) / 2)
    for entities in (first, best, average):
        assert all(e["word"] == TEXT[e["start"] : e["end"]] for e in entities)


def test_fast_simple_path_gives_exactly_what_aggregate_gives():
    """predict's array path for `simple` (the default) must not drift from the rule tested above."""
    rng = np.random.default_rng(0)
    tags = [split_tag(label) for label in LABELS]
    for _ in range(200):
        n = int(rng.integers(1, 30))
        text = "x" * (2 * n + 2)
        offsets = [(0, 0)] + [(2 * i, 2 * i + int(rng.integers(0, 3))) for i in range(n)] + [(0, 0)]
        special = [1] + [0] * n + [1]
        best = [int(b) for b in rng.integers(0, len(LABELS), n + 2)]
        top = [float(t) for t in rng.random(n + 2)]
        tokens = [
            {"best": best[i], "top": top[i], "index": i, "start": s, "end": e, "word_id": i}
            for i, (s, e) in enumerate(offsets)
            if not special[i] and s != e
        ]
        assert simple_entities(best, top, offsets, special, tags, text) == aggregate(
            tokens, ID2LABEL, text, "simple"
        )


def test_none_keeps_one_entry_per_non_o_token():
    entities = aggregate(TOKENS, ID2LABEL, TEXT, "none")
    assert [(e["entity"], e["index"], e["word"]) for e in entities] == [
        ("B-PER", 1, "John"),
        ("I-PER", 2, "Smith"),
        ("B-LOC", 4, "Par"),
        ("I-PER", 5, "is"),
    ]


def _check(records, texts, key="entity_group"):
    assert [r["input"] for r in records] == texts
    assert [r["id"] for r in records] == list(range(len(texts)))
    for r, text in zip(records, texts, strict=True):
        for e in r["entities"]:
            assert 0 <= e["start"] < e["end"] <= len(text)
            assert e["word"] == text[e["start"] : e["end"]]
            assert 0.0 <= e["score"] <= 1.0
            assert e[key] in (LABELS if key == "entity" else ("PER", "LOC"))
    assert any(r["entities"] for r in records)


@pytest.mark.parametrize("how", ["none", "simple", "first", "average", "max"])
def test_every_aggregation_gives_well_formed_entities(cli, model, how):
    result = cli("infer", "ner", *TEXTS, "--model", model, "--aggregation", how)
    assert result.code == 0, result.err
    records = result.records()
    _check(records, TEXTS, "entity" if how == "none" else "entity_group")
    if how == "none":
        for r in records:
            assert [e["index"] for e in r["entities"]] == sorted({e["index"] for e in r["entities"]})
            assert all(e["index"] >= 1 for e in r["entities"])  # [CLS] is never an entity


def test_word_aggregation_never_splits_a_word(cli, model):
    text = "unbelievably wonderful zigzags"
    records = cli("infer", "ner", text, "--model", model, "--aggregation", "first").records()
    bounds = (
        {0, len(text)}
        | {i for i, c in enumerate(text) if c == " "}
        | {i + 1 for i, c in enumerate(text) if c == " "}
    )
    for e in records[0]["entities"]:
        assert e["start"] in bounds and e["end"] in bounds


def test_batched_equals_unbatched(cli, model):
    args = ("infer", "ner", *TEXTS, "--model", model, "--aggregation", "none")
    one = cli(*args, "--batch-size", "1").records()
    many = cli(*args, "--batch-size", "3").records()
    for a, b in zip(one, many, strict=True):
        assert [(e["entity"], e["index"], e["start"], e["end"]) for e in a["entities"]] == [
            (e["entity"], e["index"], e["start"], e["end"]) for e in b["entities"]
        ]
        assert [e["score"] for e in a["entities"]] == pytest.approx(
            [e["score"] for e in b["entities"]], abs=1e-4
        )


def test_long_text_is_truncated_not_refused(cli, model):
    text = " ".join(["paris"] * 400)
    result = cli("infer", "ner", text, "--model", model, "--aggregation", "none")
    assert result.code == 0, result.err
    entities = result.records()[0]["entities"]
    assert max(e["index"] for e in entities) <= 126  # 128 tokens with [CLS] and [SEP]


def test_unknown_aggregation_is_a_one_line_error(cli, model):
    assert_user_error(cli("infer", "ner", "hi", "--model", model, "--aggregation", "longest"), "aggregation")


def test_table_shows_entities(cli, model):
    from tasktool.options import InferOptions
    from tasktool.tasks.registry import resolve

    predictor = resolve("ner").load_predictor()(resolve("ner"), InferOptions(model=str(model)))
    record = {"entities": [{"entity_group": "PER", "word": "John", "score": 0.5, "start": 0, "end": 4}]}
    assert predictor.display(record) == {"entities": "John:PER (0.50)"}
    assert predictor.display({"entities": []}) == {"entities": "(none)"}
