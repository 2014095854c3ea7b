"""Generation speed: tasktool against transformers.pipeline / a plain `generate` loop, greedy, real sizes.

Models: random weights of real size, built here (no Hub): GPT-2 small (12 layers, 768 wide, 50,257-token
vocabulary) for text-generation, BART base (6+6 layers, 768 wide, 50,265 tokens) for summarization,
Whisper tiny's sizes (4+4 layers, 384 wide; tasktool's small test vocabulary) for speech recognition.
Their tokenizers are byte-level BPEs trained on the bundled IMDB reviews, topped up with placeholder
tokens to the real vocabulary size, so every id the random model emits decodes to text.

Inputs: prompts cut from the IMDB reviews (text-generation: 4-40 words; summarization: 20-120 words),
the same for every path. Greedy decoding, a fixed `max_new_tokens` (saved in the model's
generation_config, so the pipeline script and tasktool read the same setting).

Rows, measured in one run (paths alternated, medians of the repeats):

- in-process, model loaded outside the timing: the pipeline at each batch size (its best is the
  baseline), a plain `model.generate` loop over batches in input order (what a script without the
  pipeline does; the only baseline for summarization, which has no pipeline in transformers 5), the
  speech-recognition pipeline at each batch size for Whisper (clips of 2-12 s, tones in noise), and
  tasktool's engine at its defaults;
- whole process (text-generation): `python -m tasktool infer text-generation --file ...` against
  benchmarks/pipeline_infer.py at the pipeline's best batch size: start-up and load included.

Outputs are compared text for text with the baseline: greedy decoding of the same prompt should give
the same continuation whatever the batch (padding is masked); the share that matches is recorded.
Writes benchmarks/results.json under "generation".

    python benchmarks/generation.py            # 48 prompts, 32 new tokens, 3 repeats
    python benchmarks/generation.py --quick    # 16 prompts, 8 new tokens, one repeat
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import re
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

PIPELINE_BATCHES = (8, 16, 32, 48)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def reviews() -> list[str]:
    rows = csv.DictReader(open(ROOT / "tasktool" / "data" / "imdb_sample.csv", encoding="utf-8"))
    return [" ".join(re.sub(r"<br\s*/?>", " ", row["text"]).split()) for row in rows]


def prompts(n: int, lo: int, hi: int, seed: int = 0) -> list[str]:
    """n prompts of lo..hi words, each the start of a review (mixed lengths, as real inputs are)."""
    rng = random.Random(seed)
    texts = reviews()
    out = []
    for i in range(n):
        words = texts[i % len(texts)].split()
        out.append(" ".join(words[: rng.randint(lo, min(hi, len(words)))]))
    return out


def byte_bpe(specials: list[str], vocab_size: int, real_size: int):
    """tasktool's in-process byte-level BPE trained on the reviews, topped up with placeholder entries to
    `real_size`: vocabulary entries no merge reaches, as a real vocabulary's rare tokens are (as added
    tokens, 42,000 of them made every process spend 2-3 s loading the tokenizer, which a real GPT-2 or
    BART tokenizer does not)."""
    import json

    from tokenizers import Tokenizer

    from tasktool.tiny.text import byte_bpe as train

    tok = train(specials, None, vocab_size, texts=reviews())
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    for i in range(tok.get_vocab_size(), real_size):
        vocab[f"<x{i}>"] = i
    return Tokenizer.from_str(json.dumps(data))


def build_gpt2(out: Path, new_tokens: int) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    eot = "<|endoftext|>"
    tok = byte_bpe([eot], 8000, 50257)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=1024,
        bos_token=eot,
        eos_token=eot,
        pad_token=eot,
        padding_side="left",  # a decoder-only batch must end where generation starts
    )
    eos = fast.eos_token_id
    config = GPT2Config(vocab_size=len(fast), bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    model.generation_config.update(max_new_tokens=new_tokens, do_sample=False, pad_token_id=eos)
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out


def build_bart(out: Path, new_tokens: int) -> Path:
    import torch
    from tokenizers import processors
    from transformers import BartConfig, BartForConditionalGeneration, PreTrainedTokenizerFast

    tok = byte_bpe(["<s>", "<pad>", "</s>", "<unk>"], 8000, 50265)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_max_length=1024,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    config = BartConfig(
        vocab_size=len(fast), bos_token_id=0, pad_token_id=1, eos_token_id=2, decoder_start_token_id=2
    )
    torch.manual_seed(0)
    model = BartForConditionalGeneration(config)
    model.generation_config.update(
        max_new_tokens=new_tokens, num_beams=1, do_sample=False, forced_bos_token_id=None
    )
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out


def build_whisper(out: Path) -> Path:
    """Whisper tiny's sizes (4+4 layers, 384 wide, 6 heads) with random weights, on tasktool's in-process
    Whisper tokenizer (a small byte BPE plus Whisper's special tokens: a smaller vocabulary than the
    real 51,865, the timestamp tokens must stay last)."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from tasktool import tiny

    tiny.build("whisper", out, "WhisperForConditionalGeneration")
    config = WhisperConfig.from_pretrained(out)
    config.update(
        dict(
            d_model=384,
            encoder_layers=4,
            decoder_layers=4,
            encoder_attention_heads=6,
            decoder_attention_heads=6,
            encoder_ffn_dim=1536,
            decoder_ffn_dim=1536,
            max_target_positions=448,
            init_std=0.2,  # a wider random init: the text depends on the audio, not one repeated token
        )
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = WhisperForConditionalGeneration.from_pretrained(out).generation_config
    with torch.no_grad():  # quieter timestamp tokens (as tiny/audio.py does): the random model writes text
        model.model.decoder.embed_tokens.weight[model.generation_config.no_timestamps_token_id + 1 :] *= 0.05
    model.save_pretrained(out)
    return out


def clips(n: int, seed: int = 0) -> list:
    """n clips of 2-12 s: tones in noise (a random model transcribes anything as well as speech)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = np.arange(int(16000 * rng.uniform(2, 12))) / 16000
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 800) * t) + 0.05 * rng.standard_normal(t.size)
        out.append(wave.astype(np.float32))
    return out


def timed(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result, times


# ---------------------------------------------------------------------------------------------- runners
def tasktool_runner(task: str, model: Path, **options):
    """tasktool's predictor and engine, model loaded once; options as `tasktool infer` takes them."""
    from tasktool.engine import Engine, Item
    from tasktool.inference import build_predictor
    from tasktool.options import InferOptions
    from tasktool.tasks.registry import resolve

    opts = InferOptions(model=str(model), device="cpu", **options)
    predictor = build_predictor(resolve(task), opts, quiet=True)
    key = {"text-generation": "generated_text", "summarization": "summary_text"}.get(task, "text")

    def run(texts):
        engine = Engine(predictor, batch_size=opts.batch_size, max_batch_tokens=opts.max_batch_tokens)
        return [r.get(key) for r in engine.run(Item(i, t) for i, t in enumerate(texts))]

    return run


def pipeline_runner(model: Path):
    import transformers

    transformers.utils.logging.set_verbosity_error()
    pipe = transformers.pipeline("text-generation", model=str(model), device="cpu")
    return lambda texts, bs: [r[0]["generated_text"] for r in pipe(texts, batch_size=bs)]


def generate_loop(model_dir: Path, decoder_only: bool):
    """A plain script: tokenizer + model.generate over batches in input order."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    cls = AutoModelForCausalLM if decoder_only else AutoModelForSeq2SeqLM
    model = cls.from_pretrained(model_dir).eval()

    def run(texts, bs):
        out = []
        for start in range(0, len(texts), bs):
            batch = tok(texts[start : start + bs], return_tensors="pt", padding=True)
            with torch.inference_mode():
                ids = model.generate(**batch)
            if decoder_only:
                new = ids[:, batch["input_ids"].shape[1] :]
                out += [
                    t + c
                    for t, c in zip(
                        texts[start : start + bs],
                        tok.batch_decode(new, skip_special_tokens=True),
                        strict=True,
                    )
                ]
            else:
                out += [s.strip() for s in tok.batch_decode(ids, skip_special_tokens=True)]
        return out

    return run


def agreement(a: list, b: list) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / max(1, len(a))


# ---------------------------------------------------------------------------------------------- rows
def text_generation(work: Path, args) -> dict:
    model = build_gpt2(work / "gpt2", args.new_tokens)
    texts = prompts(args.items, 4, 40)
    pipe = pipeline_runner(model)
    loop = generate_loop(model, decoder_only=True)
    ours = tasktool_runner("text-generation", model)
    ours48 = tasktool_runner("text-generation", model, batch_size=48)
    pipe(texts[:4], 4)  # warm-up: first calls allocate
    ours(texts[:4])
    rows, outputs = {}, {}
    for bs in PIPELINE_BATCHES:
        seconds, outputs[f"pipeline b{bs}"], _ = timed(lambda bs=bs: pipe(texts, bs), args.repeats)
        rows[f"pipeline b{bs}"] = len(texts) / seconds
        log(f"  pipeline b{bs}: {rows[f'pipeline b{bs}']:.2f} prompts/s")
    best = max(PIPELINE_BATCHES, key=lambda b: rows[f"pipeline b{b}"])
    seconds, outputs["generate loop b16"], _ = timed(lambda: loop(texts, 16), args.repeats)
    rows["generate loop b16"] = len(texts) / seconds
    seconds, outputs["tasktool"], _ = timed(lambda: ours(texts), args.repeats)
    rows["tasktool"] = len(texts) / seconds
    seconds, outputs["tasktool --batch-size 48"], _ = timed(lambda: ours48(texts), args.repeats)
    rows["tasktool --batch-size 48"] = len(texts) / seconds
    log("  " + ", ".join(f"{k} {v:.2f}/s" for k, v in rows.items() if not k.startswith("pipeline")))
    reference = outputs[f"pipeline b{best}"]
    return {
        "model": "GPT-2 small config, random weights (124M parameters)",
        "prompts": len(texts),
        "new_tokens": args.new_tokens,
        "prompts_per_s": {k: round(v, 3) for k, v in rows.items()},
        "pipeline_best_batch": best,
        "tasktool_vs_pipeline_best": round(rows["tasktool"] / rows[f"pipeline b{best}"], 3),
        "tasktool_b48_vs_pipeline_best": round(
            rows["tasktool --batch-size 48"] / rows[f"pipeline b{best}"], 3
        ),
        "tasktool_vs_generate_loop": round(rows["tasktool"] / rows["generate loop b16"], 3),
        "same_text_as_pipeline_best": {k: agreement(v, reference) for k, v in outputs.items()},
        "whole_process": whole_process(model, texts, best, work),
    }


def whole_process(
    model: Path, texts: list[str], best: int, work: Path, tasktool_models: dict[str, Path] | None = None
) -> dict:
    """`tasktool infer` on each of `tasktool_models` (default {"tasktool": model}) against the pipeline
    script at batch `best`, alternated, three times each; texts compared with the pipeline's."""
    source = work / "prompts.txt"
    source.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    pipe_name = f"pipeline script b{best}"
    commands = {
        name: [sys.executable, "-m", "tasktool", "infer", "text-generation", "--model", str(folder),
               "--file", str(source), "-o", str(work / f"tt-{i}.jsonl"), "--quiet", "--overwrite"]
        for i, (name, folder) in enumerate((tasktool_models or {"tasktool": model}).items())
    }  # fmt: skip
    commands[pipe_name] = [sys.executable, str(ROOT / "benchmarks" / "pipeline_infer.py"), "text-generation",
                           str(model), str(source), str(work / "pipe.jsonl"), str(best)]  # fmt: skip
    seconds = {name: [] for name in commands}
    for _ in range(3):
        for name, cmd in commands.items():
            start = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{name} failed: {proc.stderr.strip()[-400:]}")
            seconds[name].append(time.perf_counter() - start)
    theirs = [json.loads(x)["result"][0]["generated_text"] for x in _lines(work / "pipe.jsonl")]
    rate = {name: len(texts) / statistics.median(s) for name, s in seconds.items()}
    log("  whole process: " + ", ".join(f"{k} {v:.2f}/s" for k, v in rate.items()))
    ours = {name: commands[name][commands[name].index("-o") + 1] for name in commands if name != pipe_name}
    return {
        "prompts_per_s": {k: round(v, 3) for k, v in rate.items()},
        "seconds": {k: [round(x, 2) for x in v] for k, v in seconds.items()},
        "vs_pipeline": {name: round(rate[name] / rate[pipe_name], 3) for name in ours},
        "same_text": {
            name: agreement([json.loads(x)["generated_text"] for x in _lines(Path(out))], theirs)
            for name, out in ours.items()
        },
    }


def _lines(path: Path) -> list[str]:
    return [x for x in path.read_text(encoding="utf-8").split("\n") if x.strip()]


def summarization(work: Path, args) -> dict:
    model = build_bart(work / "bart", args.new_tokens)
    texts = prompts(args.items, 20, 120, seed=1)
    loop = generate_loop(model, decoder_only=False)
    ours = tasktool_runner("summarization", model)
    loop(texts[:4], 4)
    ours(texts[:4])
    rows, outputs = {}, {}
    for bs in (8, 16, 32):
        seconds, outputs[f"generate loop b{bs}"], _ = timed(lambda bs=bs: loop(texts, bs), args.repeats)
        rows[f"generate loop b{bs}"] = len(texts) / seconds
    best = max(rows, key=rows.get)
    seconds, outputs["tasktool"], _ = timed(lambda: ours(texts), args.repeats)
    rows["tasktool"] = len(texts) / seconds
    log("  " + ", ".join(f"{k} {v:.2f}/s" for k, v in rows.items()))
    return {
        "model": "BART base config, random weights (140M parameters)",
        "inputs": len(texts),
        "new_tokens": args.new_tokens,
        "inputs_per_s": {k: round(v, 3) for k, v in rows.items()},
        "generate_loop_best": best,
        "tasktool_vs_generate_loop_best": round(rows["tasktool"] / rows[best], 3),
        "same_text_as_generate_loop_best": {k: agreement(v, outputs[best]) for k, v in outputs.items()},
    }


def speech_recognition(work: Path, args) -> dict:
    import soundfile as sf
    import transformers

    model = build_whisper(work / "whisper")
    audio = clips(max(8, args.items // 2))
    paths = []
    for i, wave in enumerate(audio):
        paths.append(str(work / f"clip{i}.wav"))
        sf.write(paths[-1], wave, 16000)
    transformers.utils.logging.set_verbosity_error()
    pipe = transformers.pipeline("automatic-speech-recognition", model=str(model), device="cpu")
    gen = {"max_new_tokens": args.new_tokens, "task": "transcribe"}

    def run_pipe(bs):
        inputs = [{"raw": w, "sampling_rate": 16000} for w in audio]
        return [r["text"].strip() for r in pipe(inputs, batch_size=bs, generate_kwargs=gen)]

    processor = transformers.AutoProcessor.from_pretrained(model)
    whisper = transformers.AutoModelForSpeechSeq2Seq.from_pretrained(model).eval()

    def run_loop(bs):  # a plain script: the processor, generate, batch_decode
        import torch

        out = []
        for start in range(0, len(audio), bs):
            features = processor(
                audio[start : start + bs],
                sampling_rate=16000,
                return_tensors="pt",
                return_attention_mask=True,
            )
            with torch.inference_mode():
                ids = whisper.generate(**features, **gen)
            out += [t.strip() for t in processor.batch_decode(ids, skip_special_tokens=True)]
        return out

    ours = tasktool_runner("automatic-speech-recognition", model, max_new_tokens=args.new_tokens)
    run_pipe(2)
    run_loop(2)
    ours(paths[:2])
    rows, outputs = {}, {}
    for bs in (4, 8, 16):
        seconds, outputs[f"pipeline b{bs}"], _ = timed(lambda bs=bs: run_pipe(bs), args.repeats)
        rows[f"pipeline b{bs}"] = len(audio) / seconds
    best = max(rows, key=rows.get)
    seconds, outputs["generate loop b8"], _ = timed(lambda: run_loop(8), args.repeats)
    rows["generate loop b8"] = len(audio) / seconds
    seconds, outputs["tasktool"], _ = timed(lambda: [t.strip() for t in ours(paths)], args.repeats)
    rows["tasktool"] = len(audio) / seconds
    log("  " + ", ".join(f"{k} {v:.2f}/s" for k, v in rows.items()))
    return {
        "model": "Whisper tiny sizes, random weights (init_std 0.2; tasktool's small test vocabulary)",
        "clips": len(audio),
        "new_tokens": args.new_tokens,
        "clips_per_s": {k: round(v, 3) for k, v in rows.items()},
        "pipeline_best": best,
        "tasktool_vs_pipeline_best": round(rows["tasktool"] / rows[best], 3),
        "tasktool_vs_generate_loop": round(rows["tasktool"] / rows["generate loop b8"], 3),
        "same_text_as_generate_loop": {
            k: agreement(v, outputs["generate loop b8"]) for k, v in outputs.items()
        },
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="text-generation,summarization,automatic-speech-recognition")
    parser.add_argument("--items", type=int)
    parser.add_argument("--new-tokens", type=int)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results.json"))
    args = parser.parse_args(argv)
    args.items = args.items or (16 if args.quick else 48)
    args.new_tokens = args.new_tokens or (8 if args.quick else 32)
    args.repeats = args.repeats or (1 if args.quick else 3)
    import torch

    result = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "quick": args.quick,
        }
    }
    with tempfile.TemporaryDirectory(prefix="tasktool-genbench-") as tmp:
        work = Path(tmp)
        for task, fn in (
            ("text-generation", text_generation),
            ("summarization", summarization),
            ("automatic-speech-recognition", speech_recognition),
        ):
            if task in args.only.split(","):
                log(f"{task}:")
                (work / task).mkdir()
                result[task] = fn(work / task, args)
    print(json.dumps(result, indent=2))
    if not args.quick:
        path = Path(args.output)
        data = json.loads(path.read_text()) if path.exists() else {}
        data["generation"] = {**data.get("generation", {}), **result}
        path.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
