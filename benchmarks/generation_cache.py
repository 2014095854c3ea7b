"""Where GPT-2 generation's time goes on this CPU, and what transformers' static KV cache changes.

The same GPT-2 small (random weights, generation.py's model and prompts: 48 prompts of 4-40 words, 32
new tokens, greedy, one batch of 48 as the pipeline's best), `model.generate` with the default dynamic
cache against `cache_implementation="static"`, with and without transformers' torch.compile of the decode
step (`compile_config`), alternated, and a torch profile of one dynamic run
grouped by operator. The achieved GFLOP/s of the linear layers (prefill over the padded batch plus
every decode step) against this CPU's best float32 matmul rate says how much a faster engine could win.
Writes benchmarks/results.json under "generation_cache".

    python benchmarks/generation_cache.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import common  # noqa: E402
import generation  # noqa: E402
from fp32_floor import matmul_rate  # noqa: E402

PROMPTS, NEW_TOKENS, REPEATS = 48, 32, 3


def main() -> int:
    import torch
    import transformers
    from torch.profiler import ProfilerActivity, profile
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory(prefix="tasktool-gen-cache-") as work:  # 500 MB of weights, read once
        folder = generation.build_gpt2(Path(work) / "gpt2", NEW_TOKENS)
        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder).eval()
    batch = tok(generation.prompts(PROMPTS, 4, 40), return_tensors="pt", padding=True)

    from transformers import CompileConfig

    compiled = CompileConfig(fullgraph=False, dynamic=False)
    # transformers compiles the decode step on GPUs only; this (private) switch asks it on the CPU too
    compiled._compile_all_devices = True

    def run(cache: str | None):
        extra = {"cache_implementation": cache} if cache else {}
        if cache == "static+compile":
            extra = {"cache_implementation": "static", "compile_config": compiled}
        with torch.inference_mode():
            ids = model.generate(**batch, max_new_tokens=NEW_TOKENS, do_sample=False, **extra)
        return ids[:, batch["input_ids"].shape[1] :].tolist()

    modes = {
        "dynamic cache": None,
        "static cache": "static",
        "static cache + torch.compile": "static+compile",
    }
    warm_up = {}
    for name, cache in modes.items():
        start = time.perf_counter()
        run(cache)  # warm-up (and the compilation)
        warm_up[name] = round(time.perf_counter() - start, 2)
    times: dict[str, list[float]] = {m: [] for m in modes}
    outputs = {}
    for _ in range(REPEATS):
        for name, cache in modes.items():
            start = time.perf_counter()
            outputs[name] = run(cache)
            times[name].append(time.perf_counter() - start)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(None)
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ops)
    top = {e.key: round(e.self_cpu_time_total / total, 3) for e in ops[:8]}
    addmm = next(e for e in ops if e.key == "aten::addmm").self_cpu_time_total / 1e6
    config = model.config
    d, layers = config.n_embd, config.n_layer
    linear = layers * (4 * d * d + 8 * d * d)  # attention in/out, MLP in/out (GPT-2: 4x wide)
    prompt_tokens = batch["input_ids"].numel()
    flops = 2 * linear * (prompt_tokens + PROMPTS * (NEW_TOKENS - 1))
    peak = matmul_rate({"hidden_size": d, "intermediate_size": 4 * d})
    dynamic, static, compiled_s = (statistics.median(times[m]) for m in modes)
    res = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "prompts": PROMPTS,
        "new_tokens": NEW_TOKENS,
        "padded_prompt_tokens": prompt_tokens,
        "real_prompt_tokens": int(batch["attention_mask"].sum()),
        "seconds": {m: statistics.median(t) for m, t in times.items()},
        "times_s": times,
        "first_call_s": warm_up,
        "static_x_dynamic": round(dynamic / static, 3),
        "static_compile_x_dynamic": round(dynamic / compiled_s, 3),
        "same_text": {
            name: sum(x == y for x, y in zip(out, outputs["dynamic cache"], strict=True)) / PROMPTS
            for name, out in outputs.items()
        },
        "profile_share_dynamic": top,
        "linear_gflops": round(flops / addmm / 1e9, 1),
        "matmul_peak_gflops": round(peak, 1),
    }
    print(json.dumps(res, indent=1))
    common.save_section(Path(__file__).parent / "results.json", "generation_cache", res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
