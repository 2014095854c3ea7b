"""Shared benchmark fixtures: seeded synthetic inputs, the same model weights for every path, timing."""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

# Common English words: the MiniLM WordPiece vocabulary knows them, so token counts look like real text.
VOCAB = (
    "the of and to a in is it you that he was for on are with as i his they be at one have this from or had "
    "by not word but what some we can out other were all there when up use your how said an each she which do "
    "their time if will way about many then them write would like so these her long make thing see him two "
    "has look more day could go come did number sound no most people my over know water than call first who "
    "may down side been now find any new work part take get place made live where after back little only "
    "round man year came show every good me give our under name very through just form sentence great think "
    "say help low line differ turn cause much mean before move right boy old too same tell does set three "
    "want air well also play small end put home read hand port large spell add even land here must big high "
    "such follow act why ask men change went light kind off need house picture try us again animal point "
    "mother world near build self earth father head stand own page should country found answer school grow "
    "study still learn plant cover food sun four between state keep eye never last let thought city tree "
    "cross farm hard start might story saw far sea draw left late run while press close night real life few "
    "north open seem together next white children begin got walk example ease paper group always music those "
    "both mark often letter until mile river car feet care second book carry took science eat room friend "
    "began idea fish mountain stop once base hear horse cut sure watch color face wood main enough plain girl "
    "usual young ready above ever red list though feel talk bird soon body dog family direct pose leave song "
    "measure door product black short numeral class wind question happen complete ship area half rock order "
    "fire south problem piece told knew pass since top whole king space heard best hour better true during "
    "hundred five remember step early hold west ground interest reach fast verb sing listen six table travel "
    "less morning ten simple several vowel toward war lay against pattern slow center love person money serve "
    "appear road map rain rule govern pull cold notice voice unit power town fine certain fly fall lead cry "
    "dark machine note wait plan figure star box noun field rest correct able pound done beauty drive stood "
    "contain front teach week final gave green oh quick develop ocean warm free minute strong special mind "
    "behind clear tail produce fact street inch multiply nothing course stay wheel full force blue object "
    "decide surface deep moon island foot system busy test record boat common gold possible plane stead dry "
    "wonder laugh thousand ago ran check game shape equate miss brought heat snow tire bring yes distant fill "
    "east paint language among london paris john mary google monday july english french summer winter"
).split()
NAMES = ("John", "Mary", "Paris", "London", "Google", "Berlin", "Smith", "Apple", "Monday", "Europe")


def keep_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options of a script over the models and exports `onnx_speed.py --keep` left: --keep, --heads,
    --only (sections), --repeats, --output."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", required=True, help="the folder `onnx_speed.py --keep` filled")
    parser.add_argument("--heads", choices=("trained", "random"), default="trained")
    parser.add_argument("--only", default="classify,ner", help="sections (classify, ner)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results.json"))
    return parser


def save_section(path: str | Path, key: str, section: dict) -> None:
    """Replace one section of a results.json (created if missing), keeping every other script's."""
    path = Path(path)
    results = json.loads(path.read_text()) if path.exists() else {}
    results[key] = section
    path.write_text(json.dumps(results, indent=2) + "\n")


def sentences(n: int, seed: int = 0, lo: int = 5, hi: int = 120) -> list[str]:
    """n English-like sentences of lo..hi words, with capitalised names and punctuation (fixed seed)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [
            rng.choice(NAMES) if rng.random() < 0.06 else rng.choice(VOCAB)
            for _ in range(rng.randint(lo, hi))
        ]
        for i in range(7, len(words), rng.randint(8, 14)):
            words[i] += ","
        text = " ".join(words)
        out.append(text[0].upper() + text[1:] + rng.choice(".!?"))
    return out


def qa_pairs(n: int, seed: int = 1) -> list[dict]:
    """Question/context pairs: the question reuses a few words of its context, like SQuAD questions do."""
    rng = random.Random(seed)
    contexts = sentences(n, seed=seed, lo=30, hi=150)
    pairs = []
    for context in contexts:
        words = context.rstrip(".!?").split()
        start = rng.randrange(0, max(1, len(words) - 4))
        question = (
            rng.choice(("What", "Who", "Where", "When", "Which")) + " " + " ".join(words[start : start + 4])
        )
        pairs.append({"question": question + "?", "context": context})
    return pairs


NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
CLS_LABELS = ["NEGATIVE", "POSITIVE"]


def build_models(out: Path, base: str, seed: int = 0) -> dict[str, Path]:
    """The real MiniLM body with seeded random heads, saved once so every path loads the same weights."""
    import torch
    from transformers import (
        AutoModelForQuestionAnswering,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
    )

    tokenizer = AutoTokenizer.from_pretrained(base)
    heads = {
        "text-classification": (AutoModelForSequenceClassification, CLS_LABELS),
        "token-classification": (AutoModelForTokenClassification, NER_LABELS),
        "question-answering": (AutoModelForQuestionAnswering, None),
    }
    paths = {}
    for task, (cls, labels) in heads.items():
        torch.manual_seed(seed)
        kwargs = {}
        if labels:
            kwargs = {
                "num_labels": len(labels),
                "id2label": dict(enumerate(labels)),
                "label2id": {v: i for i, v in enumerate(labels)},
            }
        model = cls.from_pretrained(base, **kwargs)
        path = out / task
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        paths[task] = path
        del model
    return paths


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object, list[float]]:
    """Median wall time of fn over repeats (and the last result, and every time)."""
    times = []
    result = None
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result, times


def agreement(a: list, b: list) -> float:
    if not a:
        return 1.0
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def arithmetic_floor(model, token_counts: list[int], rows: int = 2048, repeats: int = 5) -> dict:
    """The fastest a float32 run could go: FLOPs of the real tokens over this machine's matmul speed.

    Every Linear of the model runs on a [rows, in_features] input to measure the matmul speed with the
    model's own shapes; FLOPs count the Linears (2 x in x out per token) plus attention scores and
    mixing (4 x length^2 x hidden per layer and sequence). No padding, no other op: nothing real reaches it.
    """
    import torch

    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    per_token = sum(2 * m.in_features * m.out_features for m in linears)
    cfg = model.config
    attention = sum(4 * n * n * cfg.hidden_size * cfg.num_hidden_layers for n in token_counts)
    total = per_token * sum(token_counts) + attention
    inputs = {m.in_features: torch.randn(rows, m.in_features) for m in linears}
    with torch.inference_mode():
        for m in linears:  # warm-up
            m(inputs[m.in_features])
        start = time.perf_counter()
        for _ in range(repeats):
            for m in linears:
                m(inputs[m.in_features])
        seconds = (time.perf_counter() - start) / repeats
    gflops = per_token * rows / seconds / 1e9
    return {
        "matmul_gflop_s": gflops,
        "tokens": sum(token_counts),
        "gflop": total / 1e9,
        "items_per_s": len(token_counts) / (total / 1e9 / gflops),
    }


def eval_loss(model_dir, texts: list[str], labels: list[str], batch_size: int = 32) -> float:
    """Mean cross-entropy of a saved classifier on held-out texts, computed the same way for every path."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    targets = torch.tensor([model.config.label2id[label] for label in labels])
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            )
            logits = model(**batch).logits.float()
            total += torch.nn.functional.cross_entropy(
                logits, targets[start : start + batch_size], reduction="sum"
            ).item()
    return total / len(texts)
