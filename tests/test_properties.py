"""Property-based checks: whatever the inputs, batch sizes and failures, records come back complete and in order."""

from __future__ import annotations

import csv
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasktool.engine import Engine, Item, Predictor, batches
from tasktool.errors import ItemError
from tasktool.io.inputs import InputSpec, text_items


class Echo(Predictor):
    """Returns each input's length; inputs starting with '!' fail in prepare, '?' fail in predict."""

    def __init__(self):
        self.batch_sizes = []

    def prepare(self, payload):
        if payload.startswith("!"):
            raise ItemError("bad in prepare")
        return payload

    def length(self, prepared):
        return len(prepared)

    def predict(self, batch):
        self.batch_sizes.append(len(batch))
        if any(p.startswith("?") for p in batch):
            raise ItemError("bad in predict")
        return [{"n": len(p), "echo": p} for p in batch]


class SharedEcho(Echo):
    """Echo whose batches the engine may run on several threads at once."""

    def concurrent_batches(self):
        return True


texts = st.lists(st.text(alphabet="ab!? ", min_size=1, max_size=12), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts,
    st.integers(1, 9),
    st.one_of(st.none(), st.integers(1, 40)),
    st.integers(1, 25),
    st.integers(1, 3),
)
def test_engine_returns_every_item_in_input_order(inputs, batch_size, max_tokens, window, workers):
    predictor = Echo() if workers == 1 else SharedEcho()
    engine = Engine(
        predictor,
        batch_size=batch_size,
        max_batch_tokens=max_tokens,
        window=window,
        on_error="skip",
        workers=workers,
    )
    records = list(engine.run(Item(i, t) for i, t in enumerate(inputs)))
    assert [r["id"] for r in records] == list(range(len(inputs)))
    for record, text in zip(records, inputs, strict=True):
        assert record["input"] == text
        if text.startswith(("!", "?")):
            assert "error" in record
        else:
            assert record["echo"] == text and "error" not in record
    assert all(size <= batch_size for size in predictor.batch_sizes)


@given(st.lists(st.integers(1, 50), max_size=80), st.integers(1, 8), st.integers(1, 200))
def test_token_budget_batches_stay_within_budget_unless_one_item_exceeds_it(lengths, batch_size, budget):
    order = sorted(((i, None, n) for i, n in enumerate(lengths)), key=lambda e: e[2], reverse=True)
    cut = list(batches(order, batch_size, budget))
    assert sorted(e[0] for b in cut for e in b) == list(range(len(lengths)))
    for batch in cut:
        assert len(batch) <= batch_size
        if len(batch) > 1:
            assert max(e[2] for e in batch) * len(batch) <= budget


line = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\r\n\x85"),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(line, min_size=1, max_size=20), st.sampled_from(["txt", "jsonl", "csv", "tsv", "json"]))
def test_readers_return_every_row_in_order(tmp_path_factory, rows, fmt):
    path = tmp_path_factory.mktemp("rows") / f"in.{fmt}"
    if fmt == "txt":
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps({"text": r}) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps([{"text": r} for r in rows]), encoding="utf-8")
    else:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, delimiter="\t" if fmt == "tsv" else ",")
            writer.writerow(["text"])
            writer.writerows([[r] for r in rows])
    items = list(text_items(InputSpec(file=str(path))))
    assert [i.id for i in items] == list(range(len(rows)))
    expected = [r.rstrip("\r\n") for r in rows]
    assert [i.payload for i in items] == expected


class RunsOutOfMemory(Predictor):
    """Fails like a GPU out of memory on batches larger than `limit`."""

    def __init__(self, limit: int):
        self.limit, self.sizes = limit, []

    def predict(self, batch):
        self.sizes.append(len(batch))
        if len(batch) > self.limit:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [{"echo": p} for p in batch]


def test_out_of_memory_halves_the_batch_says_so_and_keeps_order(capsys):
    predictor = RunsOutOfMemory(limit=2)
    inputs = [f"item {i}" for i in range(9)]
    records = list(Engine(predictor, batch_size=8).run(Item(i, t) for i, t in enumerate(inputs)))
    assert [r["echo"] for r in records] == inputs
    assert predictor.sizes[0] == 8 and max(s for s in predictor.sizes if s <= 2) == 2
    assert "out of memory on a batch of 8" in capsys.readouterr().err


def test_other_runtime_errors_are_not_retried():
    class Broken(Predictor):
        def predict(self, batch):
            raise RuntimeError("shape mismatch")

    import pytest

    with pytest.raises(RuntimeError, match="shape mismatch"):
        list(Engine(Broken(), batch_size=4).run(Item(i, "x") for i in range(3)))
