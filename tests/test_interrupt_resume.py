"""An interrupted inference run keeps every finished record, and --resume completes it exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tasktool.tiny.text import WORDS

pytestmark = pytest.mark.slow  # fine-tuning runs / several processes: `make test-fast` leaves these out

N = 3000


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    import random

    rng = random.Random(1)
    path = tmp_path_factory.mktemp("resume") / "in.txt"
    path.write_text("\n".join(" ".join(rng.choices(WORDS, k=rng.randint(3, 30))) for _ in range(N)) + "\n")
    return path


def _cmd(model, inputs, out, *extra):
    return [
        sys.executable,
        "-m",
        "tasktool",
        "infer",
        "sentiment",
        "--file",
        str(inputs),
        "--model",
        str(model),
        "--output",
        str(out),
        "--batch-size",
        "4",
        *extra,
    ]


def _env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _lines(path):
    return path.read_text().splitlines() if path.exists() else []


def _wait_for_records(path, at_least, proc, timeout=120):
    start = time.time()
    while time.time() - start < timeout:
        if len(_lines(path)) >= at_least:
            return
        if proc.poll() is not None:
            pytest.fail(f"run ended before it could be interrupted: {proc.stderr.read()}")
        time.sleep(0.05)
    pytest.fail("no records appeared")


def test_sigkill_then_resume_gives_one_record_per_input_identical_to_a_full_run(tiny, inputs, tmp_path):
    model = tiny("text-classification", labels=["NEG", "POS"])
    full = tmp_path / "full.jsonl"
    subprocess.run(_cmd(model, inputs, full), env=_env(), check=True, capture_output=True, timeout=600)

    out = tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"
    proc = subprocess.Popen(
        _cmd(model, inputs, out), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for_records(partial, 1, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # an unfinished output never takes the final name
    written = _lines(partial)
    assert 0 < len(written) < N
    for line in written[:-1]:
        json.loads(line)  # every line but possibly a cut last one is a complete record

    done = subprocess.run(
        _cmd(model, inputs, out, "--resume"), env=_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    resumed = [json.loads(line) for line in _lines(out)]
    expected = [json.loads(line) for line in _lines(full)]
    assert sorted(r["id"] for r in resumed) == list(range(N))
    by_id = {r["id"]: r for r in resumed}
    for ref in expected:
        got = by_id[ref["id"]]
        assert got["input"] == ref["input"] and got["label"] == ref["label"]
        assert got["score"] == pytest.approx(ref["score"], abs=1e-4)


def test_ctrl_c_finishes_the_batch_writes_complete_lines_and_exits_130(tiny, inputs, tmp_path):
    model = tiny("text-classification", labels=["NEG", "POS"])
    out = tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"
    proc = subprocess.Popen(
        _cmd(model, inputs, out), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for_records(partial, 1, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    records = [json.loads(line) for line in _lines(partial)]  # every line parses
    assert [r["id"] for r in records] == list(range(len(records)))  # in input order, no gaps
