"""The engine's fast paths give exactly what the slow, obvious ones gave.

A window is tokenized in one batched call, batches are padded straight into arrays, and bf16
weights run on CPU: none of it may change a feature, a padded tensor, an input's place, or a label.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tasktool.engine import Engine, Item
from tasktool.errors import ItemError
from tasktool.options import InferOptions
from tasktool.tasks.registry import resolve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

LABELS = ["NEG", "POS"]
TEXTS = [
    "a wonderful film",
    "",
    "the worst movie of the year and far too long, really",
    "ok",
    "   ",
    "great story, good music and a fine cast",
] * 3


@pytest.fixture(scope="module")
def model(tiny):
    return tiny("text-classification", labels=LABELS)


def _predictor(model, **kwargs):
    spec = resolve("text-classification")
    return spec.load_predictor()(spec, InferOptions(model=str(model), device="cpu", **kwargs))


def test_window_tokenization_matches_tokenizing_each_input_and_keeps_bad_items_in_place(model):
    predictor = _predictor(model)
    payloads = [*TEXTS, {"text": "first of a pair", "text_pair": "second"}]
    many = predictor.prepare_many(payloads)
    assert len(many) == len(payloads)
    for payload, got in zip(payloads, many, strict=True):
        try:
            want = predictor.prepare(payload)
        except ItemError as exc:
            assert isinstance(got, ItemError) and got.message == exc.message
            continue
        assert {k: list(v) for k, v in got.items()} == {k: list(v) for k, v in want.items()}


def test_array_padding_equals_tokenizer_pad_on_both_sides(model):
    import torch

    predictor = _predictor(model)
    features = [f for f in predictor.prepare_many(TEXTS) if not isinstance(f, ItemError)]
    for side in ("right", "left"):
        predictor.tokenizer.padding_side = side
        fast = predictor.collate(features)
        slow = predictor.tokenizer.pad(
            [
                {k: f[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in f}
                for f in features
            ],
            return_tensors="pt",
        )
        assert set(fast) == set(slow)
        for key in slow:
            assert fast[key].dtype == torch.long and torch.equal(fast[key], slow[key]), (side, key)


def test_engine_prepares_each_window_in_one_call():
    from tasktool.engine import Predictor

    class Counting(Predictor):
        def __init__(self):
            self.calls = []

        def prepare_many(self, payloads):
            self.calls.append(len(payloads))
            return super().prepare_many(payloads)

        def predict(self, batch):
            return [{"n": len(p)} for p in batch]

    predictor = Counting()
    records = list(Engine(predictor, batch_size=4, window=10).run(Item(i, "x" * (i % 7)) for i in range(25)))
    assert predictor.calls == [10, 10, 5]
    assert [r["n"] for r in records] == [i % 7 for i in range(25)]


def test_bfloat16_on_cpu_loads_bf16_weights_and_agrees_with_float32(model):
    import torch

    texts = [t for t in TEXTS if t.strip()]
    fp32 = _predictor(model, dtype="float32")
    bf16 = _predictor(model, dtype="bfloat16")
    assert bf16.model.bert.embeddings.word_embeddings.weight.dtype == torch.bfloat16
    # the task head stays float32, so near-equal logits are not rounded into ties
    assert bf16.model.classifier.weight.dtype == torch.float32
    run32 = list(Engine(fp32, batch_size=4).run(Item(i, t) for i, t in enumerate(texts)))
    run16 = list(Engine(bf16, batch_size=4).run(Item(i, t) for i, t in enumerate(texts)))
    assert all(isinstance(r["score"], float) for r in run16)
    assert [r["score"] for r in run16] == pytest.approx([r["score"] for r in run32], abs=0.02)


def test_token_budget_batches_give_the_same_records_as_fixed_batches(model):
    predictor = _predictor(model)
    texts = [t for t in TEXTS if t.strip()]
    fixed = list(Engine(predictor, batch_size=8).run(Item(i, t) for i, t in enumerate(texts)))
    seen = []
    original = predictor.predict
    predictor.predict = lambda batch: (
        seen.append(max(len(f["input_ids"]) for f in batch) * len(batch)) or original(batch)
    )
    budget = list(
        Engine(predictor, batch_size=64, max_batch_tokens=40).run(Item(i, t) for i, t in enumerate(texts))
    )
    assert [r["label"] for r in budget] == [r["label"] for r in fixed]
    assert [r["score"] for r in budget] == pytest.approx([r["score"] for r in fixed], abs=1e-5)
    assert len(seen) > 1 and all(tokens <= 40 for tokens in seen)


def test_a_long_input_does_not_pad_a_full_batch_and_batches_stay_full_otherwise():
    """Real text has a long tail: one 385-token sentence must not pad 31 sentences of 120 tokens."""
    from tasktool.engine import MAX_PADDING, batches

    lengths = [385, 300, 200, 150, 130] + [121 - i // 8 for i in range(96)]
    order = sorted(((i, None, n) for i, n in enumerate(lengths)), key=lambda e: -e[2])
    cut = list(batches(order, 32, None))
    assert sorted(e[0] for b in cut for e in b) == list(range(len(lengths)))  # every input, once
    for batch in cut:
        padded = max(e[2] for e in batch) * len(batch)
        assert sum(e[2] for e in batch) >= (1 - MAX_PADDING) * padded
    assert len(cut[0]) < 32 and all(len(b) == 32 for b in cut[1:-1])
    # equal lengths (images, fixed-size inputs) still fill every batch
    same = [(i, None, 10) for i in range(70)]
    assert [len(b) for b in batches(same, 32, None)] == [32, 32, 6]
    # generators take no limit (their cost is the decode steps a split would add): full batches
    from tasktool.tasks.seq2seq.predict import Seq2SeqPredictor
    from tasktool.tasks.text_generation.predict import TextGeneration

    assert TextGeneration.max_padding is None and Seq2SeqPredictor.max_padding is None
    assert [len(b) for b in batches(order, 32, None, None)] == [32, 32, 32, 5]


def test_benchmark_plain_loop_and_engine_give_identical_labels(model):
    """The benchmark's 'identical labels' column compares like with like."""
    import loops
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = [t for t in TEXTS if t.strip()]
    hf = AutoModelForSequenceClassification.from_pretrained(model).eval()
    plain = loops.classify(hf, AutoTokenizer.from_pretrained(model), texts, batch_size=4)
    engine = list(Engine(_predictor(model), batch_size=4).run(Item(i, t) for i, t in enumerate(texts)))
    assert plain == [r["label"] for r in engine]


def test_cpu_encoders_batch_by_tokens_unless_a_batch_option_is_given(model):
    from tasktool.inference import build_predictor
    from tasktool.tasks.text import CPU_BATCHING

    spec = resolve("text-classification")
    default = InferOptions(model=str(model), device="cpu")
    build_predictor(spec, default, quiet=True)
    assert (default.batch_size, default.max_batch_tokens) == CPU_BATCHING
    for given in ({"batch_size": 16}, {"max_batch_tokens": 300}):
        opts = InferOptions(model=str(model), device="cpu", **given)
        build_predictor(spec, opts, quiet=True)
        assert {k: getattr(opts, k) for k in given} == given  # the user's choice stands as given
        assert (opts.batch_size, opts.max_batch_tokens) != CPU_BATCHING


def test_generators_keep_rows_a_batch_on_cpu(tiny):
    """A decoder's cost is its decode steps, whatever a batch's tokens: no token budget by default."""
    from tasktool.inference import build_predictor

    spec = resolve("text-generation")
    opts = InferOptions(model=str(tiny("text-generation")), device="cpu")
    build_predictor(spec, opts, quiet=True)
    assert opts.max_batch_tokens is None and opts.batch_size == spec.load_predictor().default_batch_size
