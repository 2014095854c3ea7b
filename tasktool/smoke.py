"""Smoke mode: the real code path with a shrunk model and a handful of examples, no network.

`shrunk_model` keeps what the real run would check (architecture family, label set,
tokenizer or processor) and drops the size: fewer layers, narrow hidden sizes, random weights.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

SMOKE_EXAMPLES = 8
SMOKE_STEPS = 3

_LAYERS = (
    "num_hidden_layers",
    "num_layers",
    "n_layer",
    "encoder_layers",
    "decoder_layers",
    "num_decoder_layers",
)
_HEADS = (
    "num_attention_heads",
    "n_head",
    "encoder_attention_heads",
    "decoder_attention_heads",
    "num_heads",
    "num_key_value_heads",
)
_WIDTH = ("hidden_size", "d_model", "n_embd")
_FFN = ("intermediate_size", "d_ff", "encoder_ffn_dim", "decoder_ffn_dim", "n_inner")
_TEXT_FAMILIES = ("bert", "gpt2", "bart", "t5", "marian")
_PROCESSOR_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "source.spm",
    "target.spm",
    "sentencepiece.bpe.model",
    "preprocessor_config.json",
    "processor_config.json",
    "added_tokens.json",
    "generation_config.json",
)


def shrink_config(config):
    """Fewer layers and narrow sizes; labels, vocabulary and special tokens stay as they are."""
    for name in _LAYERS:
        if isinstance(getattr(config, name, None), int):
            setattr(config, name, min(getattr(config, name), 2))
    for name in _HEADS:
        if isinstance(getattr(config, name, None), int):
            setattr(config, name, 2)
    for name in _WIDTH:
        if isinstance(getattr(config, name, None), int):
            setattr(config, name, 32)
    for name in _FFN:
        if isinstance(getattr(config, name, None), int):
            setattr(config, name, 64)
    if isinstance(getattr(config, "d_kv", None), int):
        config.d_kv = 16
    if hasattr(config, "embedding_size") and isinstance(config.embedding_size, int):
        config.embedding_size = 32
    return config


def shrunk_model(spec, model_ref: str | None, out_dir: Path, revision: str | None = None) -> Path:
    """A small random model standing in for `model_ref`: its own config shrunk when that config is local
    (text families), otherwise the task family's tiny default."""
    from tasktool import tiny

    out_dir = Path(out_dir)
    local = Path(model_ref).expanduser() if model_ref else None
    if (
        local is not None
        and local.is_dir()
        and (local / "config.json").exists()
        and spec.family in _TEXT_FAMILIES
    ):
        import torch
        import transformers

        from tasktool import runtime

        config = shrink_config(runtime.load_config(str(local), revision))
        runtime.check_compatible(spec, config, str(local))
        out_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        model = getattr(transformers, spec.model_class).from_config(config)
        model.save_pretrained(out_dir)
        for name in _PROCESSOR_FILES:
            if (local / name).exists():
                shutil.copy2(local / name, out_dir / name)
        return out_dir
    if local is not None and local.is_dir():
        from tasktool import runtime

        config = runtime.load_config(str(local), revision)
        runtime.check_compatible(spec, config, str(local))
        labels = (
            [config.id2label[i] for i in sorted(config.id2label)]
            if getattr(config, "id2label", None)
            else None
        )
        return tiny.build(spec.name, out_dir, labels=labels)
    return tiny.build(spec.name, out_dir)


def smoke_recipe(recipe: dict) -> dict:
    """A few steps on a few examples; everything else (columns, labels, lengths) as the real run."""
    recipe.update(
        max_steps=SMOKE_STEPS,
        max_train_samples=2 * SMOKE_EXAMPLES,
        max_eval_samples=SMOKE_EXAMPLES,
        eval_steps=None,
        save_steps=None,
        logging_steps=1,
    )
    for key in ("generation_max_new_tokens", "max_target_length"):  # short generations: shape checks only
        if recipe.get(key):
            recipe[key] = min(int(recipe[key]), 8)
    if recipe.get("num_beams"):
        recipe["num_beams"] = 1
    return recipe


def smoke_dir(prefix: str = "tasktool-smoke-", keep: bool = False) -> Path:
    """A temporary folder for a smoke run; removed when the process ends unless `keep`."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if not keep:
        import atexit

        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


# ---------------------------------------------------------------- `tasktool smoke`


def _text_sample(spec, folder: Path) -> dict:
    """Training/eval files and infer arguments for a text task, from tasktool.samples."""
    from tasktool import samples as S

    name = spec.name
    if name == "text-classification":
        rows = S.classification_rows(24)
        return {
            "train": S.write_csv(folder / "train.csv", rows[:16]),
            "eval": S.write_csv(folder / "eval.csv", rows[16:]),
            "infer": [r["text"] for r in rows[16:19]],
        }
    if name == "token-classification":
        rows = S.ner_rows(24)
        return {
            "train": S.write_jsonl(folder / "train.jsonl", rows[:16]),
            "eval": S.write_jsonl(folder / "eval.jsonl", rows[16:]),
            "infer": [" ".join(r["tokens"]) for r in rows[16:19]],
        }
    if name == "question-answering":
        rows = S.qa_rows(24)
        infer = S.write_jsonl(
            folder / "questions.jsonl",
            [{"question": r["question"], "context": r["context"]} for r in rows[16:19]],
        )
        return {
            "train": S.write_jsonl(folder / "train.jsonl", rows[:16]),
            "eval": S.write_jsonl(folder / "eval.jsonl", rows[16:]),
            "infer_args": ["--file", str(infer)],
        }
    if name in ("summarization", "translation"):
        summaries, translations = S.seq2seq_rows(24)
        rows = summaries if name == "summarization" else translations
        texts = [r["document"] for r in summaries[16:19]]
        return {
            "train": S.write_jsonl(folder / "train.jsonl", rows[:16]),
            "eval": S.write_jsonl(folder / "eval.jsonl", rows[16:]),
            "infer": texts,
            "infer_args": ["--max-new-tokens", "8"],
        }
    if name in ("text-generation", "fill-mask"):
        lines = S.text_lines(40)
        train = folder / "train.txt"
        train.write_text("\n".join(lines[:32]) + "\n")
        dev = folder / "eval.txt"
        dev.write_text("\n".join(lines[32:]) + "\n")
        if name == "fill-mask":
            infer = [
                " ".join(["[MASK]" if i == 2 else w for i, w in enumerate(line.split())])
                for line in lines[32:35]
            ]
            return {"train": train, "eval": dev, "infer": infer}
        return {
            "train": train,
            "eval": dev,
            "infer": [" ".join(line.split()[:4]) for line in lines[32:35]],
            "infer_args": ["--max-new-tokens", "8"],
        }
    raise KeyError(name)


def _media_sample(spec, folder: Path) -> dict:
    from tasktool import samples as S

    name = spec.name
    if name == "audio-classification":
        train = S.write_audio_classes(folder / "train", per_class=4)
        dev = S.write_audio_classes(folder / "eval", per_class=2)
        return {"train": train, "eval": dev, "infer": [str(folder / "eval")]}
    if name == "automatic-speech-recognition":
        train = S.write_asr_sample(folder / "train", n=4)
        return {"train": train, "eval": train, "infer": [str(next(train.glob("*.wav")))]}
    if name == "image-classification":
        train = S.write_image_classes(folder / "train", per_class=4)
        dev = S.write_image_classes(folder / "eval", per_class=2)
        return {"train": train, "eval": dev, "infer": [str(folder / "eval")]}
    picture = S.write_scene(folder / "scene.png")
    extra = ["--threshold", "0.0"] if name in ("object-detection", "image-segmentation") else []
    return {"infer": [str(picture)], "infer_args": extra}


def sample_for(spec, folder: Path) -> dict:
    from tasktool.tasks.registry import AUDIO, IMAGE

    folder.mkdir(parents=True, exist_ok=True)
    if spec.input_kind in (AUDIO, IMAGE):
        return _media_sample(spec, folder)
    return _text_sample(spec, folder)


def _call(args: list[str]) -> None:
    """Run a tasktool command in-process, exactly as the command line would."""
    import contextlib
    import io

    from tasktool.cli.app import app

    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        app(args=args, standalone_mode=False, prog_name="tasktool")


def smoke_task(spec, workdir: Path) -> dict:
    """Build a tiny model, fine-tune a few steps, reload, infer and evaluate; time each stage."""
    import json
    import time

    from tasktool import tiny

    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    model = tiny.build(spec.name, workdir / "tiny", **_tiny_kwargs(spec))
    sample = sample_for(spec, workdir / "data")
    stages["build"] = time.perf_counter() - t0
    trained = model
    if spec.trainer and "train" in sample:
        t = time.perf_counter()
        trained = workdir / "finetuned"
        _call(
            [
                "finetune",
                spec.name,
                "--data",
                str(sample["train"]),
                "--eval-data",
                str(sample["eval"]),
                "--model",
                str(model),
                "--output-dir",
                str(trained),
                "--quiet",
                *_smoke_overrides(),
            ]
        )
        stages["finetune"] = time.perf_counter() - t
    t = time.perf_counter()
    preds = workdir / "predictions.jsonl"
    _call(
        [
            "infer",
            spec.name,
            *sample.get("infer", []),
            *sample.get("infer_args", []),
            "--model",
            str(trained),
            "--output",
            str(preds),
            "--quiet",
        ]
    )
    records = [json.loads(line) for line in preds.read_text().splitlines()]
    if not records or any("error" in r for r in records):
        raise RuntimeError(
            f"infer returned {len(records)} records, errors: {[r.get('error') for r in records]}"
        )
    stages["infer"] = time.perf_counter() - t
    if spec.trainer and "eval" in sample:
        t = time.perf_counter()
        metrics = workdir / "metrics.json"
        _call(
            [
                "evaluate",
                spec.name,
                "--model",
                str(trained),
                "--data",
                str(sample["eval"]),
                "--output",
                str(metrics),
            ]
        )
        json.loads(metrics.read_text())
        stages["evaluate"] = time.perf_counter() - t
    stages["total"] = time.perf_counter() - t0
    return stages


def _smoke_overrides() -> list[str]:
    """The built-in samples are small already: the smoke recipe's short run as key=value overrides."""
    recipe = smoke_recipe({"generation_max_new_tokens": 8, "max_target_length": 8, "num_beams": 1})
    return [f"{k}={v}" for k, v in recipe.items() if v is not None and k != "max_eval_samples"]


def _tiny_kwargs(spec) -> dict:
    labels = {
        "text-classification": ["negative", "positive"],
        "token-classification": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
        "audio-classification": ["high", "low"],
        "image-classification": ["blue", "red"],
    }.get(spec.name)
    return {"labels": labels} if labels else {}


def run_smoke(task_names: list[str], keep: Path | None = None) -> list[dict]:
    """Smoke-test the given tasks (all by default); one result row per task."""
    import time

    from tasktool.errors import TaskToolError
    from tasktool.tasks.registry import TASKS, resolve

    specs = [resolve(name) for name in task_names] if task_names else list(TASKS.values())
    root = Path(keep) if keep else smoke_dir()
    rows = []
    for spec in specs:
        start = time.perf_counter()
        row = {"task": spec.name, "ok": False}
        try:
            row["stages"] = smoke_task(spec, root / spec.name)
            row["ok"] = True
        except TaskToolError as exc:
            row["error"] = exc.one_line()
        except Exception as exc:  # noqa: BLE001 - a smoke run reports every failure, it never crashes
            row["error"] = (
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            )
        row["seconds"] = round(time.perf_counter() - start, 2)
        rows.append(row)
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return rows
