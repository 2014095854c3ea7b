"""The output/resume state machine: any sequence of runs, kills and resumes on any input ends with
exactly one record per input, in input order, and never touches the input.

Runs go through the real path (tasktool.inference.run_inference: readers, id checks, fingerprint,
lock, engine, writers) with a trivial in-process predictor instead of a model, so hundreds of
sequences run in seconds. A kill is the predictor raising at a chosen item (records of finished
windows are on disk, the rest is not), optionally followed by what only a real SIGKILL leaves
behind: a torn last line and a lock file of a dead process. A few sequences kill a real process
with SIGKILL instead (marked slow).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasktool.engine import Predictor
from tasktool.errors import ItemError, TaskToolError

DEAD_PID = 999_999_999  # above any pid_max: never a live process


class Killed(BaseException):
    """The process dies here (a BaseException: nothing in the run may catch it as an input error)."""


class Echo(Predictor):
    """A model stand-in: each text's length and a fixed score; empty text is a bad input. `kill_at`
    kills the run when the predictor reaches that many items (counted across the run); `delay` slows
    each batch (for the SIGKILL tests)."""

    window = 3
    kill_at: int | None = None
    delay = 0.0

    def __init__(self, spec, opts):
        self.seen = 0

    def prepare(self, payload):
        if not payload.strip():
            raise ItemError("empty input text")
        return payload

    def length(self, prepared):
        return len(prepared)

    def predict(self, batch):
        if self.kill_at is not None and self.seen + len(batch) > self.kill_at:
            raise Killed()
        self.seen += len(batch)
        if self.delay:
            time.sleep(self.delay)
        return [{"label": f"len{len(text)}", "score": 0.5} for text in batch]


# a model "folder" the runner can check (it holds a config.json) for a predictor that reads nothing
# (one fixed folder, so that the processes a test starts and kills fingerprint the same model)
ECHO_MODEL = Path(tempfile.gettempdir()) / "tasktool-test-echo-model"
ECHO_MODEL.mkdir(exist_ok=True)
(ECHO_MODEL / "config.json").write_text("{}")
SPEC = SimpleNamespace(
    name="echo", input_kind="text", default_model=str(ECHO_MODEL), load_predictor=lambda: Echo
)


def run(inputs: Path, out: Path, resume=False, overwrite=False, batch_size=2, on_error="skip"):
    from tasktool.inference import run_inference
    from tasktool.io.inputs import InputSpec
    from tasktool.options import InferOptions

    opts = InferOptions(model=str(ECHO_MODEL), batch_size=batch_size)
    source = InputSpec(file=str(inputs))
    return run_inference(
        SPEC, opts, source, out, fmt="none", resume=resume, on_error=on_error, quiet=True, overwrite=overwrite
    )


def expected_records(rows: list[dict]) -> list[tuple]:
    from tasktool.io.records import dumps

    out = []
    for n, row in enumerate(rows):
        rid = row.get("id", n)
        text = row["text"]
        out.append(json.loads(dumps({"id": rid, "input": text})) | {"ok": bool(text.strip())})
    return [(r["id"], r["input"], r["ok"]) for r in out]


def read_records(path: Path, allow_torn_tail: bool = False) -> list[tuple]:
    lines = path.read_text(encoding="utf-8").split("\n")
    tail = lines.pop()  # after the last newline: empty unless torn
    assert tail == "" or allow_torn_tail, f"torn last line in {path.name}: {tail!r}"
    records = [json.loads(line) for line in lines]
    return [(r["id"], r["input"], "error" not in r) for r in records]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


texts = st.one_of(
    st.text(min_size=0, max_size=12),
    st.sampled_from(["\ud800 lone", "=SUM(A1)", '"quoted"', "tab\there", "a\nb", "  ", "1e20"]),
)


@st.composite
def inputs(draw):
    values = draw(st.lists(texts, min_size=1, max_size=14))
    ids = draw(
        st.one_of(
            st.none(),
            st.lists(
                st.one_of(
                    st.integers(-5, 10**12),
                    st.text(max_size=5),
                    st.floats(allow_nan=False, allow_infinity=False),
                ),
                min_size=len(values),
                max_size=len(values),
                unique_by=lambda v: json.dumps(v),
            ),
        )
    )
    rows = [
        {"text": t} if ids is None else {"id": i, "text": t}
        for t, i in zip(values, ids or values, strict=True)
    ]
    return rows


op = st.tuples(
    st.sampled_from(["run", "resume", "resume-overwrite"]),
    st.one_of(st.none(), st.integers(0, 16)),  # kill after this many predicted items (None: no kill)
    st.booleans(),  # after a kill: a torn last line and a dead process's lock file, as SIGKILL leaves
    st.integers(1, 4),  # batch size
)


SEQUENCES = {"rows": inputs(), "ops": st.lists(op, min_size=1, max_size=6), "window": st.integers(1, 5)}
HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@pytest.mark.slow  # 250 sequences of up to 7 runs each: seconds, not milliseconds
@settings(max_examples=250, deadline=None, suppress_health_check=HEALTH)
@given(**SEQUENCES)
def test_any_runs_kills_and_resumes_leave_one_record_per_input_in_order(tmp_path_factory, rows, ops, window):
    check_sequence(tmp_path_factory, rows, ops, window)


@settings(max_examples=15, deadline=None, suppress_health_check=HEALTH)
@given(**SEQUENCES)
def test_a_few_runs_kills_and_resumes_leave_one_record_per_input_in_order(
    tmp_path_factory, rows, ops, window
):
    """The same property on a few sequences, for `make test-fast`."""
    check_sequence(tmp_path_factory, rows, ops, window)


def check_sequence(tmp_path_factory, rows, ops, window):
    folder = tmp_path_factory.mktemp("sm")
    source = folder / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    before = digest(source)
    out = folder / "out.jsonl"
    partial, lock = Path(f"{out}.partial"), Path(f"{out}.lock")
    want = expected_records(rows)
    Echo.window = window
    try:
        for kind, kill_at, torn, batch_size in ops:
            Echo.kill_at = kill_at
            complete_before = out.read_bytes() if out.exists() else None
            try:
                run(
                    source,
                    out,
                    resume=kind != "run",
                    overwrite=kind == "resume-overwrite",
                    batch_size=batch_size,
                )
                finished = True
            except Killed:
                finished = False
                if torn and partial.exists():
                    with open(partial, "a", encoding="utf-8") as fh:
                        fh.write('{"id": 0, "inp')  # the write a kill cut short
                    lock.write_text(f"{DEAD_PID}\n")
            except TaskToolError as exc:  # refused: a resume that would replace a complete output
                assert exc.exit_code == 2 and kind == "resume", exc.message
                assert "complete" in exc.message
                finished = False
            assert digest(source) == before  # the input is never touched
            if finished:
                assert read_records(out) == want
                assert not partial.exists()
            elif complete_before is not None:
                assert out.read_bytes() == complete_before  # a complete output is never damaged
            if partial.exists():  # what an unfinished run left is always an in-order prefix
                assert read_records(partial, allow_torn_tail=True) == want[: len(read_records(partial, True))]
        Echo.kill_at = None
        run(source, out, resume=True, overwrite=True)  # whatever happened, one resume finishes the job
    finally:
        Echo.kill_at, Echo.window = None, 3
    assert read_records(out) == want
    assert digest(source) == before
    assert not partial.exists() and not lock.exists()


# ---------------------------------------------------------------------- real SIGKILL, a few examples

SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
import test_resume_state_machine as sm
sm.Echo.delay = 0.05
sm.Echo.window = 2
sm.run(Path({source!r}), Path({out!r}), resume={resume!r}, batch_size=1)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kills", [1, 2])
def test_sigkilled_processes_then_a_resume_leave_one_record_per_input(tmp_path, kills):
    rows = [{"id": f"r{i}", "text": "x" * (1 + i % 7)} for i in range(40)]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = digest(source)
    out = tmp_path / "out.jsonl"
    partial = Path(f"{out}.partial")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH", "")]),
    }
    for k in range(kills):
        script = SCRIPT.format(
            tests=str(Path(__file__).parent), source=str(source), out=str(out), resume=k > 0
        )
        proc = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
        start = time.time()
        target = 4 * (k + 1)
        while time.time() - start < 120:
            lines = partial.read_text().count("\n") if partial.exists() else 0
            if lines >= target or proc.poll() is not None:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert Path(f"{out}.lock").exists()  # what a SIGKILL leaves: taken over by the next run
    run(source, out, resume=True)
    assert read_records(out) == expected_records(rows)
    assert digest(source) == before and not Path(f"{out}.lock").exists()
