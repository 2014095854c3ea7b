"""The Python API: what the command line runs, callable from notebooks and scripts.

    import tasktool
    records = tasktool.infer("sentiment", ["What a great film", "Dull"], model="out/")
    summary = tasktool.finetune("sentiment", data="train.csv", output_dir="out/", epochs=1, lr=1e-4)
    metrics = tasktool.evaluate("sentiment", model="out/", data="test.csv")

Each `tasktool` command is a thin layer over one of these functions (same code path, same records
and metrics); errors are raised as tasktool.errors.TaskToolError with the message the CLI prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def infer(
    task: str,
    inputs: list | str | None = None,
    *,
    file: str | None = None,
    column: str | None = None,
    dataset: str | None = None,
    split: str = "test",
    dataset_config: str | None = None,
    question: str | None = None,
    context: str | None = None,
    delimiter: str | None = None,
    allow_absolute_paths: bool = False,
    output: str | Path | None = None,
    fmt: str = "none",
    resume: bool = False,
    on_error: str = "raise",
    quiet: bool = True,
    smoke: bool = False,
    overwrite: bool = False,
    **options: Any,
) -> list[dict]:
    """Run a model over inputs; returns one record per input, in input order (also written to `output`).

    `options` are the infer options (model, device, dtype, batch_size, max_length, top_k, ...;
    see tasktool.options.InferOptions)."""
    from tasktool.inference import run_inference
    from tasktool.io.inputs import InputSpec
    from tasktool.options import InferOptions
    from tasktool.tasks.registry import resolve

    spec = resolve(task)
    texts = (inputs,) if isinstance(inputs, str) else tuple(inputs or ())
    source = InputSpec(
        texts=texts,
        file=file,
        column=column,
        dataset=dataset,
        split=split,
        dataset_config=dataset_config,
        question=question,
        context=context,
        delimiter=delimiter,
        allow_absolute_paths=allow_absolute_paths,
    )
    records: list[dict] = []
    run_inference(
        spec,
        InferOptions(**options),
        source,
        output=Path(output) if output else None,
        fmt=fmt,
        resume=resume,
        on_error=on_error,
        quiet=quiet,
        smoke=smoke,
        collect=records,
        overwrite=overwrite,
    )
    return records


def finetune(
    task: str,
    data: str | None = None,
    *,
    eval_data: str | None = None,
    dataset: str | None = None,
    train_split: str = "train",
    eval_split: str | None = None,
    model: str | None = None,
    recipe: str | None = None,
    output_dir: str | None = None,
    resume: bool = False,
    smoke: bool = False,
    quiet: bool = False,
    columns: dict[str, str | None] | None = None,
    overrides: list[str] | None = None,
    **recipe_keys: Any,
) -> dict:
    """Fine-tune a model for `task`; returns the run's summary (what metrics.json holds).

    Settings: the task's recipe < `recipe` (a YAML file) < `recipe_keys` (epochs=1, lr=1e-4, ...) <
    `overrides` ("key=value" strings, as on the command line)."""
    from tasktool.errors import TaskToolError
    from tasktool.io.readers import Source
    from tasktool.recipes import resolve_recipe
    from tasktool.tasks.registry import resolve

    spec = resolve(task)
    if "finetune" not in spec.modes:
        raise TaskToolError(f"'finetune' is not available for task '{spec.name}' yet", "see `tasktool tasks`")
    if data and dataset:
        raise TaskToolError("give the training data one way: --data or --dataset", "not both")
    if not data and not dataset:
        raise TaskToolError("no training data", "pass --data FILE or --dataset NAME")
    resolved = resolve_recipe(spec.name, recipe, recipe_keys, list(overrides or []))
    train_src = Source(data) if data else Source(dataset, train_split)
    eval_src = (
        Source(eval_data) if eval_data else (Source(dataset, eval_split) if dataset and eval_split else None)
    )
    if smoke:
        from tasktool.tiny.shrink import shrunk_model, smoke_dir, smoke_recipe

        tmp = smoke_dir(keep=not output_dir)  # a smoke run's output stays for a look
        smoke_recipe(resolved)
        base = model or resolved.get("model") or spec.default_model
        model = str(shrunk_model(spec, base, tmp / "model", resolved.get("revision")))
        output_dir = output_dir or str(tmp / "output")
    trainer = spec.load_trainer()(spec, resolved, columns or {}, quiet=quiet)
    from tasktool import runtime

    out = output_dir or f"{spec.name}-finetuned"
    with runtime.offering():  # finetune loads safetensors only and runs no model code: hints say so
        try:
            summary = trainer.run(train_src, eval_src, out, model=model, resume=resume)
        except KeyboardInterrupt:
            from tasktool.training.trainer import interrupted

            raise interrupted(out) from None
    summary["output_dir"] = str(output_dir or f"{spec.name}-finetuned")
    return summary


def evaluate(
    task: str,
    model: str | None = None,
    data: str | None = None,
    *,
    dataset: str | None = None,
    split: str = "test",
    batch_size: int = 32,
    device: str = "auto",
    columns: dict[str, str | None] | None = None,
    strict: bool = False,
    allow_absolute_paths: bool = False,
    smoke: bool = False,
    return_predictions: bool = False,
    chat_template: str | None = None,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
):
    """Score a model on labelled data with the task's metric; returns the metrics (and, with
    `return_predictions`, one record per example as well)."""
    from tasktool import runtime
    from tasktool.errors import TaskToolError
    from tasktool.io.readers import Source
    from tasktool.recipes import resolve_recipe
    from tasktool.tasks.registry import resolve
    from tasktool.training.recipe import read_yaml

    spec = resolve(task)
    if "evaluate" not in spec.modes:
        raise TaskToolError(f"'evaluate' is not available for task '{spec.name}' yet", "see `tasktool tasks`")
    if bool(data) == bool(dataset):
        raise TaskToolError("give the evaluation data one way: --data FILE or --dataset NAME", "exactly one")
    if device not in runtime.DEVICES:
        raise TaskToolError(f"invalid --device '{device}'", f"choose one of {', '.join(runtime.DEVICES)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise TaskToolError(f"--batch-size must be at least 1, got {batch_size}", "e.g. --batch-size 32")
    ref = model or spec.default_model
    recipe = resolve_recipe(spec.name)
    saved = Path(ref).expanduser() / "recipe.yaml"
    if saved.is_file():  # a tasktool-trained folder: evaluate with its own settings (stride, label names)
        recipe.update(read_yaml(saved))
    if strict:
        recipe["strict"] = True
    recipe["allow_absolute_paths"] = allow_absolute_paths  # this call's flag, never the saved recipe's
    if chat_template:
        recipe["chat_template"] = chat_template
    examples = spec.reader(recipe, columns).read(Source(data) if data else Source(dataset, split))
    if smoke:
        from tasktool.tiny.shrink import SMOKE_EXAMPLES, shrunk_model, smoke_dir

        examples = examples[:SMOKE_EXAMPLES]
        ref = str(shrunk_model(spec, ref, smoke_dir() / "model"))
    ref = runtime.check_model_ref(ref)
    evaluator = spec.evaluator(recipe)
    evaluator.allow_pickle, evaluator.trust_remote_code = allow_pickle, trust_remote_code
    metrics, records = evaluator.evaluate(ref, examples, batch_size=batch_size, device=device)
    return (metrics, records) if return_predictions else metrics


def merge(adapter_dir: str | Path, output_dir: str | Path) -> Path:
    """Merge a LoRA adapter folder (written by `finetune ... lora=true`) into its base model and save
    a plain model to `output_dir` (tokenizer and recipe.yaml too); returns the folder. The base model
    is the one adapter_config.json names; the weights keep its dtype."""
    import os
    import shutil

    from tasktool import runtime
    from tasktool.errors import TaskToolError

    src = Path(adapter_dir).expanduser()
    out = Path(output_dir).expanduser()
    if not src.is_dir():
        raise TaskToolError(f"adapter folder '{adapter_dir}' not found", "check the path")
    if out.resolve() == src.resolve():
        raise TaskToolError("the merged model cannot replace its adapter folder", "choose another --output")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TaskToolError(
            f"'{out}' already exists and is not empty", "choose another --output or remove it"
        )
    staging = out.parent / f".{out.name}.merging"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        runtime.merge_adapter(str(src), staging)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)  # a folder that exists is a whole model
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def export(
    task: str,
    model: str | None = None,
    *,
    output_dir: str | Path,
    format: str = "onnx",  # noqa: A002 - the command's --format
    optimize: str | None = None,
    quantize: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> dict:
    """Export a task's model for ONNX Runtime into the new folder `output_dir`; returns its manifest.

    `optimize`: O1, O2 or O3 (onnxruntime's graph optimizations and transformer fusions); `quantize`:
    "int8" (dynamic quantization). `tasktool infer TASK --model output_dir` then runs the exported graph."""
    from tasktool.errors import TaskToolError
    from tasktool.export import export_onnx
    from tasktool.tasks.registry import resolve

    spec = resolve(task)
    if format != "onnx":
        raise TaskToolError(f"unknown export format '{format}'", "tasktool exports --format onnx")
    manifest = export_onnx(
        spec,
        model or spec.default_model,
        output_dir,
        optimize=optimize,
        quantize=quantize,
        revision=revision,
        trust_remote_code=trust_remote_code,
        allow_pickle=allow_pickle,
    )
    manifest["output_dir"] = str(output_dir)
    return manifest
