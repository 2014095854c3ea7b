"""ONNX Runtime's fused SkipLayerNormalization against the residual Add and LayerNormalization it replaces.

`tasktool export --optimize O2` leaves the residual Add and the LayerNormalization after it as two nodes
(`enable_skip_layer_norm=False`), and a CPU session as tasktool opens it does not fuse them at load
(`tasktool.backends.CPU_DISABLED_FUSIONS`). This script measures that choice on the benchmark's
MiniLM exports (`onnx_speed.py --keep`): for each task it builds the O2 graph both ways from the same
float32 export, then

- runs both through tasktool's engine at its defaults (in process, model loaded outside the timing,
  alternated, medians of --repeats), and compares their logits' labels (NER: entities), and
- profiles both once with ONNX Runtime's profiler (one 1-thread session, the engine's batches in turn)
  to give the time of the nodes that differ.

Writes benchmarks/results.json under "onnx_fusions".

    python benchmarks/onnx_speed.py --keep /tmp/heads-bench     # once: heads, exports
    python benchmarks/onnx_fusions.py --keep /tmp/heads-bench
"""

from __future__ import annotations

import collections
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from onnx_speed import TASKS, graph_folder, keyfn, real_sentences, tasktool_runner  # noqa: E402

NODES = ("SkipLayerNormalization", "LayerNormalization", "Add")
FUSED = "model_skiplayernorm.onnx"


def fused_folder(exported: Path, out: Path) -> Path:
    """The export with its O2 graph as ONNX Runtime's optimizer writes it by default (Add +
    LayerNormalization fused into SkipLayerNormalization), from the same float32 graph."""
    import onnx
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    if out.exists():
        return out
    graph_folder(exported, "model_optimized.onnx", out)
    config = json.loads((exported / "config.json").read_text())
    model = optimize_model(
        str(exported / "model.onnx"),
        model_type="bert",
        num_heads=config["num_attention_heads"],
        hidden_size=config["hidden_size"],
        optimization_options=FusionOptions("bert"),
        opt_level=1,
    )
    model.save_model_to_file(str(out / FUSED))
    ops = {n.op_type for n in onnx.load(str(out / FUSED)).graph.node}
    assert "SkipLayerNormalization" in ops, ops
    manifest = json.loads((out / "export.json").read_text())
    manifest["default"] = FUSED
    (out / "export.json").write_text(json.dumps(manifest, indent=2))
    return out


def node_seconds(graph: Path, texts: list[str], tokenizer_json: Path, fused: bool) -> dict:
    """Seconds per node type under ONNX Runtime's profiler: one 1-thread session, tasktool's CPU
    batches (length-sorted, 64 rows within 1,024 padded tokens) one after another."""
    import numpy as np
    import onnxruntime
    from tokenizers import Tokenizer

    from tasktool.backends import session_options
    from tasktool.engine import batches
    from tasktool.tasks.text import CPU_BATCHING

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    encoded = [e.ids for e in tokenizer.encode_batch(texts)]
    order = sorted(((i, ids, len(ids)) for i, ids in enumerate(encoded)), key=lambda e: e[2], reverse=True)
    options, disabled = session_options(1, ["CPUExecutionProvider"])
    options.enable_profiling = True
    session = onnxruntime.InferenceSession(
        str(graph), options, providers=["CPUExecutionProvider"], disabled_optimizers=[] if fused else disabled
    )
    names = {i.name for i in session.get_inputs()}
    for entries in batches(order, *CPU_BATCHING):  # as the engine cuts them
        batch = [entry[1] for entry in entries]
        width = max(len(s) for s in batch)
        input_ids = np.zeros((len(batch), width), np.int64)
        mask = np.zeros_like(input_ids)
        for r, seq in enumerate(batch):
            input_ids[r, : len(seq)], mask[r, : len(seq)] = seq, 1
        feed = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        session.run(None, {k: v for k, v in feed.items() if k in names})
    profile = Path(session.end_profiling())
    seconds: collections.Counter = collections.Counter()
    for event in json.loads(profile.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            seconds[event["args"]["op_name"]] += event["dur"] / 1e6
    profile.unlink()
    return {"all_nodes": round(sum(seconds.values()), 2), **{k: round(seconds[k], 3) for k in NODES}}


def section(task: str, exported: Path, work: Path, texts: list[str], repeats: int) -> dict:
    fused = fused_folder(exported, work / "fused")
    paths = {  # name: (folder, graph, fused at load)
        "SkipLayerNormalization (fused)": (fused, fused / FUSED, True),
        "Add + LayerNormalization (tasktool)": (exported, exported / "model_optimized.onnx", False),
    }
    runners = {}
    for name, (folder, graph, _) in paths.items():
        if folder is exported:  # the export's default is its int8 graph: run the O2 one
            folder = work / "unfused"
            if not folder.exists():
                graph_folder(exported, graph.name, folder)
        runners[name] = tasktool_runner(task, folder, None)
        runners[name](texts[:64])
    times: dict[str, list[float]] = {name: [] for name in runners}
    keys = {}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            records = run(texts)
            times[name].append(time.perf_counter() - start)
            keys[name] = [keyfn(task)(r) for r in records]
    base = statistics.median(times["SkipLayerNormalization (fused)"])
    first = keys["SkipLayerNormalization (fused)"]
    return {
        name: {
            "seconds": round(statistics.median(ts), 2),
            "times_s": [round(t, 2) for t in ts],
            "x_fused": round(base / statistics.median(ts), 3),
            "same_as_fused": common.agreement(keys[name], first),
            "profile_1_thread_s": node_seconds(
                paths[name][1], texts, exported / "tokenizer.json", fused=paths[name][2]
            ),
        }
        for name, ts in times.items()
    }


def main(argv=None) -> int:
    args = common.keep_parser(__doc__).parse_args(argv)
    import onnxruntime

    heads = Path(args.keep) / args.heads
    output = Path(args.output)
    earlier = json.loads(output.read_text()) if output.exists() else {}
    items = earlier.get("onnx", {}).get("meta", {}).get("items", 2536)  # the run's own sentence count
    texts = real_sentences(items)
    res: dict = {
        "meta": {
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "onnxruntime": onnxruntime.__version__,
            "cpus": os.cpu_count(),
            "items": len(texts),
            "repeats": args.repeats,
        }
    }
    for key in args.only.split(","):
        task = TASKS[key]
        exported = heads / "onnx" / task
        if not (exported / "model_optimized.onnx").is_file():
            raise SystemExit(f"no O2 export at {exported}: run onnx_speed.py --keep {args.keep} first")
        res[key] = section(task, exported, heads / "fusions" / task, texts, args.repeats)
        for name, row in res[key].items():
            print(f"{key:9s} {name:38s} {row['seconds']:6.2f} s  x{row['x_fused']:.3f}  "
                  f"same {100 * row['same_as_fused']:.1f}%  profile {row['profile_1_thread_s']}")  # fmt: skip
    common.save_section(args.output, "onnx_fusions", res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
