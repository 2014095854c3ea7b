"""How an encoder's batches are cut on a CPU: rows a batch against a budget of padded tokens.

`tasktool infer` on a text classifier or tagger used to run 8 rows a batch unless told otherwise; it now
cuts batches by a budget of padded tokens (64 rows at most) when no batch option is given
(tasktool/tasks/text.py, CPU_BATCHING). This script measures that choice against its neighbours, whole
process (`python -m tasktool infer ... --file ... --output ...`: start-up, load, tokenization and writing
included), on torch and on ONNX Runtime's float32 graph, same inputs (the 2,536 real sentences of
onnx_speed.py), paths alternated and medians taken. Each row's labels are compared with the first row's.

    python benchmarks/onnx_speed.py --quick --keep /tmp/heads-bench    # builds the models and exports
    python benchmarks/cpu_batching.py --keep /tmp/heads-bench
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from onnx_speed import TASKS, keyfn, log, real_sentences, run_process  # noqa: E402

# name -> infer options; the first is the reference the others' labels are compared with
CHOICES = {
    "8 rows (the old default)": ["--batch-size", "8"],
    "32 rows": ["--batch-size", "32"],
    "64 rows, 512 tokens": ["--batch-size", "64", "--max-batch-tokens", "512"],
    "64 rows, 1,024 tokens (the default)": [],
    "64 rows, 2,048 tokens": ["--batch-size", "64", "--max-batch-tokens", "2048"],
}


def models_of(heads: Path, task: str) -> dict[str, Path]:
    return {
        "torch": heads / "models" / task,
        "onnxruntime fp32": heads / "graphs" / task / "model_optimized",
    }


def measure(task: str, model: Path, source: Path, work: Path, repeats: int) -> dict:
    outs = {name: work / f"{i}.jsonl" for i, name in enumerate(CHOICES)}
    walls: dict[str, list[float]] = {name: [] for name in CHOICES}
    for rep in range(repeats):
        for name, extra in CHOICES.items():
            cmd = [sys.executable, "-m", "tasktool", "infer", task, "--model", str(model), "--file", str(source),
                   "--output", str(outs[name]), "--device", "cpu", "--quiet", *extra]  # fmt: skip
            wall, _ = run_process(cmd, outs[name])
            walls[name].append(wall)
        log(f"    repeat {rep + 1}/{repeats}: " + ", ".join(f"{v[-1]:.2f}s" for v in walls.values()))
    key = keyfn(task)
    labels = {
        name: [key(json.loads(line)) for line in out.read_text(encoding="utf-8").split("\n") if line.strip()]
        for name, out in outs.items()
    }
    first = next(iter(CHOICES))
    base = statistics.median(walls[first])
    rows = {}
    for name in CHOICES:
        same = sum(a == b for a, b in zip(labels[name], labels[first], strict=True)) / len(labels[first])
        wall = statistics.median(walls[name])
        rows[name] = {"median_s": round(wall, 2), "times_s": [round(t, 2) for t in walls[name]],
                      "x_8_rows": round(base / wall, 3), "same_labels": same}  # fmt: skip
    return rows


def main(argv=None) -> int:
    args = common.keep_parser(__doc__).parse_args(argv)
    texts = real_sentences(2536)
    out = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "items": len(texts)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "inputs.txt"
        source.write_text("\n".join(texts) + "\n", encoding="utf-8")
        for key in args.only.split(","):
            task = TASKS[key]
            for backend, model in models_of(Path(args.keep) / args.heads, task).items():
                log(f"  {task} on {backend}")
                rows = measure(task, model, source, work, args.repeats)
                out[f"{key} {backend}"] = rows
                for name, row in rows.items():
                    print(f"{task:22s} {backend:17s} {name:36s} {row['median_s']:6.2f}s  "
                          f"x{row['x_8_rows']:.3f}  same labels {row['same_labels']:.2%}")  # fmt: skip
    common.save_section(args.output, "cpu_batching", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
