"""How fast float32 encoder inference can be on this CPU: the matmul floor of the ONNX benchmark's run.

The issue asked ONNX Runtime float32 for 3x the pipeline's best, whole process. This script says
whether any float32 engine could do that here. It counts the work of the benchmark's inputs (the
same 2,536 sentences, the MiniLM's own tokenizer, no padding at all): every linear layer's
multiply-adds (2 FLOPs each) plus attention's two products (QK^T and AV, 4*L*d per token per
layer), the last layer at the first token only where the export computes it so (a sentence
classifier); it measures this CPU's float32 matmul rate at the encoder's own shapes (torch, all
threads, best of several, i.e. a generous peak); the floor is FLOPs / rate, the time a perfect engine would
take with no padding, no softmax, layer norm or GELU, no tokenization, no start-up and no output. The
ratio a float32 engine can reach at most is then the pipeline's time (from results.json, the same
run's `onnx` section) over that floor.

    python benchmarks/fp32_floor.py --keep /tmp/heads-bench      # the folder onnx_speed.py --keep left
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from onnx_speed import TASKS, real_sentences  # noqa: E402


def encoder_flops(config: dict, lengths: list[int], first_token_last: bool = False) -> float:
    """first_token_last: the last layer computes position 0 only (keys and values still from every
    token), as tasktool's export of a sentence classifier does (tasktool.accel.first_token)."""
    d, ff, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    per_token_linear = 2 * (4 * d * d + 2 * d * ff)  # Q, K, V, output; FFN in and out
    full = sum(layers * (n * per_token_linear + 4 * n * n * d) for n in lengths)
    if not first_token_last:
        return float(full)
    keys_values = 2 * 2 * d * d
    last_full = sum(n * per_token_linear + 4 * n * n * d for n in lengths)
    last_first = sum(n * keys_values + (per_token_linear - keys_values) + 4 * n * d for n in lengths)
    return float(full - last_full + last_first)


def matmul_rate(config: dict, repeats: int = 30, rounds: int = 5) -> float:
    """Best float32 GFLOP/s of torch matmuls at the encoder's shapes (1,024 tokens a batch)."""
    import torch

    d, ff = config["hidden_size"], config["intermediate_size"]
    best = 0.0
    for _ in range(rounds):  # the machine is shared: the best round is the CPU's own rate
        for k, n in ((d, d), (d, ff), (ff, d)):
            a, b = torch.randn(1024, k), torch.randn(k, n)
            for _ in range(5):
                a @ b
            start = time.perf_counter()
            for _ in range(repeats):
                a @ b
            seconds = (time.perf_counter() - start) / repeats
            best = max(best, 2 * 1024 * k * n / seconds / 1e9)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", required=True, help="the folder `onnx_speed.py --keep` used")
    parser.add_argument("--heads", default="trained")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results.json"))
    args = parser.parse_args(argv)
    import torch
    from transformers import AutoTokenizer

    path = Path(args.output)
    results = json.loads(path.read_text())
    onnx = results.get("onnx", {})
    items = onnx.get("meta", {}).get("items", 2536)
    texts = real_sentences(items)
    out = {"threads": torch.get_num_threads()}
    rates: dict = {}  # by model shape: both tasks run the same MiniLM body, so one measurement
    for key, task in TASKS.items():
        if key not in onnx:
            continue
        model = Path(args.keep) / args.heads / "models" / task
        config = json.loads((model / "config.json").read_text())
        tok = AutoTokenizer.from_pretrained(model)
        lengths = [len(ids) for ids in tok(texts, truncation=True, max_length=512)["input_ids"]]
        manifest = json.loads((Path(args.keep) / args.heads / "onnx" / task / "export.json").read_text())
        first_only = manifest.get("last_layer") == "first token only"
        flops = encoder_flops(config, lengths, first_only)
        shape = (config["hidden_size"], config["intermediate_size"])
        rate = rates[shape] if shape in rates else rates.setdefault(shape, matmul_rate(config))
        floor = flops / (rate * 1e9)
        section = onnx[key]
        pipe_whole = next(v for k, v in section["whole_process"].items() if k.startswith("pipeline"))
        pipe_inside = next(v for k, v in section["in_process"].items() if k.startswith("pipeline"))
        fp32 = section["whole_process"]["onnxruntime fp32"]
        out[key] = {
            "tokens": sum(lengths),
            "last_layer": "first token only" if first_only else "every token",
            "tflop": round(flops / 1e12, 3),
            "matmul_gflops": round(rate, 1),
            "floor_s": round(floor, 2),
            "max_x_pipeline_whole_process": round(pipe_whole["median_s"] / floor, 2),
            "max_x_pipeline_in_process": round(pipe_inside["median_s"] / floor, 2),
            "onnxruntime_fp32_whole_process_gflops": round(flops / fp32["median_s"] / 1e9, 1),
        }
        print(f"{task}: {json.dumps(out[key])}")
    common.save_section(path, "onnx_fp32_floor", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
