"""Two batches in flight on a CPU change nothing but the speed.

The engine may run a predictor's batches on worker threads (each with its share of torch's
threads): every record must still come back, once, in input order, with the same result; errors,
progress and interruption behave as with one batch at a time; torch's thread count is restored.
"""

from __future__ import annotations

import threading

import pytest

from tasktool.engine import Engine, Item, Predictor, batch_workers
from tasktool.errors import ItemError, TaskToolError
from tasktool.options import InferOptions
from tasktool.tasks.registry import resolve

TEXTS = [
    "John lives in Paris and works for Google",
    "a wonderful film",
    "the worst movie of the year and far too long, really, with a plot nobody could follow at all",
    "ok",
    "Mary met Smith in London on Monday",
    "great story, good music and a fine cast",
] * 7


class Shared(Predictor):
    """Echoes lengths, notes which threads ran it; '?' fails its batch in predict."""

    def __init__(self):
        self.threads: set[str] = set()
        self.lock = threading.Lock()
        self.release = threading.Barrier(2, timeout=5)
        self.meet = True

    def concurrent_batches(self) -> bool:
        return True

    def length(self, prepared):
        return len(prepared)

    def predict(self, batch):
        with self.lock:
            self.threads.add(threading.current_thread().name)
        if self.meet:  # the first two batches wait for each other: both are in flight at once
            try:
                self.release.wait()
            except threading.BrokenBarrierError:
                pass
            self.meet = False
        if any(p.startswith("?") for p in batch):
            raise ItemError("bad in predict")
        return [{"n": len(p), "echo": p} for p in batch]


def _predictor(task: str, model, **kwargs):
    spec = resolve(task)
    return spec.load_predictor()(spec, InferOptions(model=str(model), device="cpu", **kwargs))


def test_two_workers_run_batches_at_once_and_keep_every_record_in_order():
    import torch

    predictor = Shared()
    threads = torch.get_num_threads()
    inputs = [("?" if i % 11 == 5 else "") + "x" * (i % 9 + 1) for i in range(60)]
    done = []
    engine = Engine(predictor, batch_size=4, window=25, workers=2, on_error="skip", on_batch=done.append)
    records = list(engine.run(Item(i, t) for i, t in enumerate(inputs)))
    assert [r["id"] for r in records] == list(range(60))
    for record, text in zip(records, inputs, strict=True):
        if text.startswith("?"):
            assert record["error"].startswith("bad in predict")
        else:
            assert record["echo"] == text and "error" not in record
    assert sum(done) == 60  # progress counted every item, once
    assert len(predictor.threads) == 2 and all(t.startswith("tasktool-batch") for t in predictor.threads)
    assert torch.get_num_threads() == threads


def test_a_worker_error_stops_the_run_with_its_message():
    import torch

    predictor = Shared()
    predictor.meet = False
    threads = torch.get_num_threads()
    inputs = ["x" * (i % 5 + 1) for i in range(30)]
    inputs[17] = "?bad"
    with pytest.raises(TaskToolError, match="input 17: bad in predict"):
        list(Engine(predictor, batch_size=1, workers=2).run(Item(i, t) for i, t in enumerate(inputs)))
    assert torch.get_num_threads() == threads


def test_stop_finishes_the_batches_in_flight_and_writes_only_the_ordered_prefix():
    from tasktool.engine import Interrupted

    predictor = Shared()
    predictor.meet = False
    engine = Engine(predictor, batch_size=2, workers=2)
    original = predictor.predict
    calls = []

    def predict(batch):
        calls.append(len(batch))
        if len(calls) == 3:
            engine.stop = True
        return original(batch)

    predictor.predict = predict
    with pytest.raises(Interrupted):
        list(engine.run(Item(i, "x" * (i + 1)) for i in range(40)))
    assert len(calls) < 20  # it stopped submitting soon after the stop, not at the window's end


@pytest.mark.parametrize(
    "task, labels",
    [("text-classification", ["NEG", "POS"]), ("token-classification", ["O", "B-PER", "B-LOC"])],
)
def test_concurrent_batches_give_the_records_of_one_batch_at_a_time(tiny, task, labels):
    model = tiny(task, labels=labels)
    predictor = _predictor(task, model)
    assert batch_workers(predictor, None) == (2 if __import__("torch").get_num_threads() >= 2 else 1)
    one = list(Engine(predictor, batch_size=4, workers=1).run(Item(i, t) for i, t in enumerate(TEXTS)))
    two = list(Engine(predictor, batch_size=4, workers=2).run(Item(i, t) for i, t in enumerate(TEXTS)))
    if task == "text-classification":
        assert [r["label"] for r in two] == [r["label"] for r in one]
        assert [r["score"] for r in two] == pytest.approx([r["score"] for r in one], abs=1e-5)
    else:
        strip = lambda r: [(e["word"], e["entity_group"], e["start"], e["end"]) for e in r["entities"]]  # noqa: E731
        assert [strip(r) for r in two] == [strip(r) for r in one]


def test_one_batch_at_a_time_where_sharing_is_unsafe_or_pointless(tiny, monkeypatch):
    import torch

    classifier = tiny("text-classification", labels=["NEG", "POS"])
    assert batch_workers(_predictor("text-classification", classifier), 3) == 3  # asked for
    # a compiled model stays on one thread (dynamo's caches are not shared safely)
    compiled = _predictor("text-classification", classifier)
    compiled.opts.compile = True
    assert batch_workers(compiled, None) == 1
    # predictors that keep state in predict (generation) never share
    assert batch_workers(_predictor("text-generation", tiny("text-generation")), 4) == 1
    # one torch thread (e.g. under a multi-process launch): nothing to split
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert batch_workers(_predictor("text-classification", classifier), None) == 1


def test_workers_below_one_is_a_clear_error():
    with pytest.raises(TaskToolError, match="--workers must be at least 1"):
        Engine(Shared(), workers=0)


def test_half_precision_on_a_cpu_without_its_instructions_warns_once(tiny, monkeypatch, capsys):
    from tasktool import runtime

    model = tiny("text-classification", labels=["NEG", "POS"])
    monkeypatch.setattr(runtime, "cpu_has_native", lambda half: False)
    _predictor("text-classification", model, dtype="bfloat16")
    err = capsys.readouterr().err
    assert "no bf16 matrix instructions" in err and "leave --dtype at auto" in err
    monkeypatch.setattr(runtime, "cpu_has_native", lambda half: True)
    _predictor("text-classification", model, dtype="bfloat16")
    _predictor("text-classification", model, dtype="float32")
    assert "matrix instructions" not in capsys.readouterr().err
