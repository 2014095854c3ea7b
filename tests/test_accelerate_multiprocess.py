"""Two processes under `accelerate launch`: one complete output in input order, and DDP fine-tuning.

accelerate's `--cpu` flag starts a single process unless MPI is configured, so these tests launch
two CPU processes with `--multi_gpu` (torchrun underneath) and CUDA hidden; tasktool then joins a
gloo group on CPU. Each test is a couple of short subprocess runs with a tiny model.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

ACCELERATE = Path(sys.executable).with_name("accelerate")
LABELS = ["NEG", "POS"]
ROOT = Path(__file__).resolve().parent.parent

pytestmark = [  # several processes each: `make test-fast` leaves these out
    pytest.mark.slow,
    pytest.mark.skipif(not ACCELERATE.exists(), reason="accelerate's launcher is not installed"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(*args, processes: int = 2, timeout: int = 300) -> subprocess.CompletedProcess:
    """accelerate launch; each process's stderr also goes to its own file (--tee 2 --log_dir), and
    PYTHONFAULTHANDLER makes a process killed by a signal print every thread's Python stack there."""
    import tempfile

    log_dir = Path(tempfile.mkdtemp(prefix="tasktool-launch-"))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(ROOT),
        "PYTHONFAULTHANDLER": "1",
    }
    cmd = [
        str(ACCELERATE),
        "launch",
        "--multi_gpu",
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        "--tee",
        "2",
        "--log_dir",
        str(log_dir),
        *map(str, args),
    ]
    result = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    result.log_dir = log_dir
    weakref.finalize(result, shutil.rmtree, log_dir, True)  # kept while the test can still report it
    return result


def _why(result: subprocess.CompletedProcess) -> str:
    """Everything a failed launch said: the launcher's stderr, then each process's stderr in full
    (a rank that dies of a signal leaves its last words in its own file, not at the launcher's end)."""
    parts = [f"launcher exit code {result.returncode}; launcher stderr:\n{result.stderr}"]
    for log in sorted(Path(result.log_dir).rglob("stderr.log")):
        rank = log.parent.name
        parts.append(f"----- rank {rank} stderr ({log}) -----\n{log.read_text(errors='replace')}")
    return "\n".join(parts)


def _write_inputs(path: Path, n: int) -> list[str]:
    ids = [f"row-{i}" for i in range(n)]
    with open(path, "w", encoding="utf-8") as fh:
        for i, row_id in enumerate(ids):
            # lengths vary so each process sorts and batches differently from input order
            fh.write(
                json.dumps(
                    {
                        "id": row_id,
                        "text": " ".join(["good", "bad", "film"][i % 3] for _ in range(1 + (i * 7) % 19)),
                    }
                )
                + "\n"
            )
    return ids


def test_launch_starts_two_processes_that_join_one_group(tmp_path):
    script = tmp_path / "who.py"
    script.write_text(
        "import sys\nfrom pathlib import Path\nfrom tasktool.distributed import group\n"
        "g = group()\nPath(sys.argv[1], f'rank{g.rank}').write_text(f'{g.rank} {g.size}')\n"
    )
    result = _launch(script, tmp_path)
    assert result.returncode == 0, _why(result)
    assert sorted(p.read_text() for p in tmp_path.glob("rank*")) == ["0 2", "1 2"]


def test_two_process_infer_writes_one_record_per_input_in_input_order(tiny, tmp_path):
    model = tiny("text-classification", labels=LABELS)
    inputs = tmp_path / "in.jsonl"
    ids = _write_inputs(inputs, 41)  # odd: the shards differ in size
    out = tmp_path / "out.jsonl"
    result = _launch(
        "-m",
        "tasktool",
        "infer",
        "sentiment",
        "--file",
        inputs,
        "--model",
        model,
        "--output",
        out,
        "--batch-size",
        "4",
    )
    assert result.returncode == 0, _why(result)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ids
    assert all(r["label"] in ("NEG", "POS") for r in records)
    assert not Path(str(out) + ".partial").exists()

    single = tmp_path / "single.jsonl"
    subprocess.run(
        [
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
            str(single),
            "--batch-size",
            "4",
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=300,
    )
    expected = [json.loads(line) for line in single.read_text().splitlines()]
    assert [(r["id"], r["label"]) for r in records] == [(r["id"], r["label"]) for r in expected]
    for got, want in zip(records, expected, strict=True):
        assert got["score"] == pytest.approx(want["score"], abs=1e-4)


def test_two_process_infer_prints_each_record_once_on_stdout_and_keeps_bad_items_in_place(tiny, tmp_path):
    model = tiny("text-classification", labels=LABELS)
    inputs = tmp_path / "in.jsonl"
    rows = [{"id": i, "text": "" if i == 5 else "good film " * (1 + i % 4)} for i in range(9)]
    inputs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = _launch(
        "-m",
        "tasktool",
        "infer",
        "sentiment",
        "--file",
        inputs,
        "--model",
        model,
        "--format",
        "jsonl",
        "--on-error",
        "skip",
        "--batch-size",
        "2",
    )
    assert result.returncode == 0, _why(result)
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["id"] for r in records] == list(range(9))
    assert "error" in records[5] and all("error" not in r for i, r in enumerate(records) if i != 5)


def test_two_process_infer_stops_every_process_with_one_error_on_a_bad_input(tiny, tmp_path):
    model = tiny("text-classification", labels=LABELS)
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(
        "".join(json.dumps({"id": i, "text": "" if i == 6 else "fine"}) + "\n" for i in range(10))
    )
    result = _launch(
        "-m",
        "tasktool",
        "infer",
        "sentiment",
        "--file",
        inputs,
        "--model",
        model,
        "--output",
        tmp_path / "out.jsonl",
        timeout=180,
    )
    assert result.returncode != 0
    assert "error: input 6: empty input text" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_two_process_finetune_trains_with_ddp_and_saves_one_model_that_loads(tiny, tmp_path):
    import csv

    base = tiny("text-classification", labels=LABELS)
    data = tmp_path / "train.csv"
    with open(data, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for i in range(40):
            writer.writerow(
                [("good great film " if i % 2 else "bad dull film ") * (1 + i % 3), LABELS[i % 2]]
            )
    out = tmp_path / "model"
    result = _launch(
        "-m",
        "tasktool",
        "finetune",
        "sentiment",
        "--data",
        data,
        "--model",
        base,
        "--output-dir",
        out,
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--quiet",
        "save_total_limit=1",
        "eval_fraction=0.2",  # 8 of 40 rows held out: 32 training rows
        "micro_batches=2",  # length-sorted halves under DDP: one gradient reduction per step
    )
    assert result.returncode == 0, _why(result)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    summary = json.loads((out / "metrics.json").read_text())
    # 32 training rows (20% held out), 4 per process and step, 2 processes: 4 steps, logged once each
    assert summary["train"]["global_step"] == 4
    assert len([r for r in log if "train_loss" in r]) == 1
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label == dict(enumerate(LABELS))
    loaded = subprocess.run(
        [
            sys.executable,
            "-m",
            "tasktool",
            "infer",
            "sentiment",
            "good film",
            "--model",
            str(out),
            "--format",
            "jsonl",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
    )
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["label"] in LABELS
