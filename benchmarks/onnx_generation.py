"""Generators through ONNX Runtime: tasktool on the exported graphs against tasktool on torch and the pipeline.

The models and inputs of benchmarks/generation.py (random weights of real size: GPT-2 small for
text-generation, 48 review openings of 4-40 words; BART base for summarization, 48 openings of 20-120
words; Whisper tiny's sizes for speech recognition, clips of 2-12 s), greedy, a fixed number of new
tokens. Text generation also runs `transformers.pipeline` at batch 32 and 48 (48 was its best in
generation.py) in process, and whole process (`tasktool infer` on the exported folder against
pipeline_infer.py at the pipeline's best batch, start-up and load included). Each model is exported with `tasktool.export` (fp32, and
int8 with --quantize int8); every path runs through tasktool's engine at its defaults, in process, model
loaded outside the timing, paths alternated, medians of --repeats. Text agreement: the share of inputs
whose output is the same text as tasktool on torch fp32 (fp32 graphs should give all of them: greedy
decoding of the same logits). Writes benchmarks/results.json under "onnx_generation".

    python benchmarks/onnx_generation.py            # 48 inputs, 32 new tokens, 3 repeats
    python benchmarks/onnx_generation.py --quick    # 8 inputs, 8 new tokens, one repeat
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generation  # noqa: E402  (puts the repository on the path, sets the offline environment)


def rows_for(task: str, model: Path, work: Path, inputs: list, repeats: int, **options) -> dict:
    import tasktool.api as api

    folders = {"torch fp32": model}
    for name, quantize in (("onnxruntime fp32", None), ("onnxruntime int8", "int8")):
        folders[name] = work / name.replace(" ", "-")
        started = time.perf_counter()
        api.export(task, str(model), output_dir=folders[name], quantize=quantize)
        generation.log(f"  exported {name} in {time.perf_counter() - started:.1f} s")
    runners = {name: generation.tasktool_runner(task, folder, **options) for name, folder in folders.items()}
    for run in runners.values():
        run(inputs[:2])
    times: dict[str, list[float]] = {name: [] for name in runners}
    outputs = {}
    for rep in range(repeats):
        for name, run in runners.items():
            started = time.perf_counter()
            outputs[name] = [t.strip() for t in run(inputs)]
            times[name].append(time.perf_counter() - started)
        generation.log(f"  repeat {rep + 1}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()))
    base = statistics.median(times["torch fp32"])
    return {
        name: {
            "inputs_per_s": round(len(inputs) / statistics.median(ts), 3),
            "x_torch": round(base / statistics.median(ts), 3),
            "times_s": [round(t, 2) for t in ts],
            "same_text_as_torch_fp32": generation.agreement(outputs[name], outputs["torch fp32"]),
        }
        for name, ts in times.items()
    }


def text_generation(work: Path, items: int, new_tokens: int, repeats: int) -> dict:
    """GPT-2 small: the pipeline, tasktool on torch, tasktool on the fp32 and int8 exports; one run."""
    import tasktool.api as api

    model = generation.build_gpt2(work / "gpt2", new_tokens)
    texts = generation.prompts(items, 4, 40)
    exports = {"fp32": work / "gpt2-onnx", "int8": work / "gpt2-onnx-int8"}
    for name, folder in exports.items():
        started = time.perf_counter()
        api.export(
            "text-generation", str(model), output_dir=folder, quantize=None if name == "fp32" else name
        )
        generation.log(f"  exported {name} in {time.perf_counter() - started:.1f} s")
    pipe = generation.pipeline_runner(model)
    runners = {f"pipeline b{bs}": functools.partial(lambda t, bs: pipe(t, bs), bs=bs) for bs in (32, 48)}
    runners["tasktool torch fp32"] = generation.tasktool_runner("text-generation", model)
    runners["tasktool onnxruntime fp32"] = generation.tasktool_runner("text-generation", exports["fp32"])
    runners["tasktool onnxruntime fp32 --batch-size 32"] = generation.tasktool_runner(
        "text-generation", exports["fp32"], batch_size=32
    )  # the torch path's default, for comparison with the export's (64)
    runners["tasktool onnxruntime int8"] = generation.tasktool_runner("text-generation", exports["int8"])
    for run in runners.values():
        run(texts[:4])
    times: dict[str, list[float]] = {name: [] for name in runners}
    outputs = {}
    for rep in range(repeats):
        for name, run in runners.items():
            started = time.perf_counter()
            outputs[name] = run(texts)
            times[name].append(time.perf_counter() - started)
        generation.log(f"  repeat {rep + 1}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()))
    rate = {name: len(texts) / statistics.median(ts) for name, ts in times.items()}
    best = max((32, 48), key=lambda b: rate[f"pipeline b{b}"])
    reference = outputs[f"pipeline b{best}"]
    rows = {
        name: {
            "prompts_per_s": round(rate[name], 3),
            "x_pipeline_best": round(rate[name] / rate[f"pipeline b{best}"], 3),
            "times_s": [round(t, 2) for t in times[name]],
            "same_text_as_pipeline": generation.agreement(outputs[name], reference),
        }
        for name in runners
    }
    runners.clear()  # the processes below run beside a parent that no longer holds five models
    pipe = None  # noqa: F841 - the pipeline runners close over it
    gc.collect()
    return {
        "model": "GPT-2 small config, random weights (124M parameters)",
        "prompts": len(texts),
        "in_process": rows,
        "pipeline_best_batch": best,
        "whole_process": generation.whole_process(
            model,
            texts,
            best,
            work,
            {"tasktool torch fp32": model, "tasktool onnxruntime fp32": exports["fp32"]},
        ),
    }


def report_text_generation(section: dict) -> None:
    print("\n== text-generation (x the pipeline at its best batch; same text as the pipeline)")
    for name, row in section["in_process"].items():
        print(
            f"   {name:<42} {row['prompts_per_s']:7.2f}/s  x{row['x_pipeline_best']:.2f}"
            f"  same {100 * row['same_text_as_pipeline']:.1f}%"
        )
    whole = section["whole_process"]
    for name, ratio in whole["vs_pipeline"].items():
        print(
            f"   whole process: {name} x{ratio:.2f} the pipeline script, "
            f"same text {100 * whole['same_text'][name]:.1f}%"
        )


def report(task: str, rows: dict) -> None:
    print(f"\n== {task}")
    for name, row in rows.items():
        print(
            f"   {name:<18} {row['inputs_per_s']:7.2f}/s  x{row['x_torch']:.2f} of torch"
            f"  same text {100 * row['same_text_as_torch_fp32']:.1f}%"
        )


def measure(res: dict, only: set[str], work: Path, items: int, new_tokens: int, repeats: int) -> None:
    """Run the sections in `only` with their models under `work`, each into res[section]."""
    import soundfile as sf

    if "text-generation" in only:
        generation.log("text-generation (GPT-2 small, random weights)")
        res["text-generation"] = text_generation(work / "gpt2-run", items, new_tokens, repeats)
        report_text_generation(res["text-generation"])
    if "summarization" in only:
        generation.log("summarization (BART base, random weights)")
        bart = generation.build_bart(work / "bart", new_tokens)
        texts = generation.prompts(items, 20, 120, seed=1)
        res["summarization"] = rows_for("summarization", bart, work / "bart-exports", texts, repeats)
        report("summarization", res["summarization"])
    if "automatic-speech-recognition" in only:
        generation.log("speech recognition (Whisper tiny sizes, random weights)")
        whisper = generation.build_whisper(work / "whisper")
        paths = []
        for i, wave in enumerate(generation.clips(max(8, items // 2))):
            paths.append(str(work / f"clip{i}.wav"))
            sf.write(paths[-1], wave, 16000)
        asr = rows_for(
            "automatic-speech-recognition",
            whisper,
            work / "whisper-exports",
            paths,
            repeats,
            max_new_tokens=new_tokens,
        )
        res["automatic-speech-recognition"] = asr
        report("automatic-speech-recognition", asr)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--only", default="text-generation,summarization,automatic-speech-recognition")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results.json"))
    args = parser.parse_args(argv)
    items, new_tokens = (8, 8) if args.quick else (48, 32)
    repeats = args.repeats or (1 if args.quick else 3)
    import torch

    from tasktool.runtime import quiet_transformers

    quiet_transformers()
    work = Path(tempfile.mkdtemp(prefix="tasktool-onnx-gen-"))
    res = {
        "meta": {
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "threads": torch.get_num_threads(),
            "inputs": items,
            "new_tokens": new_tokens,
            "repeats": repeats,
        }
    }
    only = set(args.only.split(","))
    try:  # the models and exports take several GB: removed whatever happens
        measure(res, only, work, items, new_tokens, repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    path = Path(args.output)
    results = json.loads(path.read_text()) if path.exists() else {}
    kept = results.get("onnx_generation", {})  # sections not run this time stay, with their own meta
    for key, value in res.items():
        kept[key if key != "meta" else "meta " + ",".join(sorted(only))] = value
    results["onnx_generation"] = kept
    path.write_text(json.dumps(results, indent=2) + "\n")
    generation.log(f"results written to {args.output} under 'onnx_generation'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
