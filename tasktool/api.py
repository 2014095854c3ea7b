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
    keep: bool = False,
    context_in_records: str = "once",
    **options: Any,
) -> list[dict]:
    """Run a model over inputs; returns one record per input, in input order (also written to `output`).

    `options` are the infer options (model, device, dtype, batch_size, max_length, top_k, ...;
    see tasktool.options.InferOptions). smoke: a shrunk random model and the first few inputs
    (its temporary folder is removed at exit unless `keep`)."""
    from tasktool.inference import run_inference
    from tasktool.io.inputs import InputSpec
    from tasktool.io.readers import parse_delimiter
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
        delimiter=parse_delimiter(delimiter),
        allow_absolute_paths=allow_absolute_paths,
        context_in_records=context_in_records,
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
        keep=keep,
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
    dataset_config: str | None = None,
    delimiter: str | None = None,
    model: str | None = None,
    recipe: str | None = None,
    output_dir: str | None = None,
    resume: bool = False,
    smoke: bool = False,
    keep: bool = False,
    quiet: bool = False,
    columns: dict[str, str | None] | None = None,
    overrides: list[str] | None = None,
    **recipe_keys: Any,
) -> dict:
    """Fine-tune a model for `task`; returns the run's summary (what metrics.json holds).

    Settings: the task's recipe < `recipe` (a YAML file) < `recipe_keys` (epochs=1, lr=1e-4, ...) <
    `overrides` ("key=value" strings, as on the command line). smoke: a shrunk random model, a few
    examples and steps, written to a temporary folder removed at exit (unless `keep` or `output_dir`)."""
    from tasktool.errors import TaskToolError
    from tasktool.io.readers import Source, parse_delimiter
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
    delimiter = parse_delimiter(delimiter)
    if data:
        train_src = Source(data, delimiter=delimiter)
    else:
        train_src = Source(dataset, train_split, config=dataset_config, delimiter=delimiter)
    eval_src = (
        Source(eval_data, delimiter=delimiter)
        if eval_data
        else (Source(dataset, eval_split, config=dataset_config) if dataset and eval_split else None)
    )
    if smoke:
        from tasktool.tiny.shrink import shrunk_model, smoke_dir, smoke_positions, smoke_recipe

        tmp = smoke_dir(keep=keep)  # removed when the process ends, unless --keep
        smoke_recipe(resolved)
        base = model or resolved.get("model") or spec.default_model
        positions = smoke_positions(resolved)
        model = str(shrunk_model(spec, base, tmp / "model", resolved.get("revision"), positions))
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
    if smoke:
        summary["smoke"] = True
    return summary


def evaluate(
    task: str,
    model: str | None = None,
    data: str | None = None,
    *,
    dataset: str | None = None,
    split: str = "test",
    dataset_config: str | None = None,
    delimiter: str | None = None,
    batch_size: int = 32,
    device: str = "auto",
    columns: dict[str, str | None] | None = None,
    strict: bool = False,
    allow_absolute_paths: bool = False,
    smoke: bool = False,
    keep: bool = False,
    return_predictions: bool = False,
    chat_template: str | None = None,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    overrides: list[str] | None = None,
    recheck_margin: float | None = None,
):
    """Score a model on labelled data with the task's metric; returns the metrics (and, with
    `return_predictions`, one record per example as well). `overrides`: "key=value" recipe settings
    over the model's saved recipe (a task's own keys, e.g. how its labels are read). Bounded metrics
    are on a 0-1 scale. `recheck_margin`: an int8 classifier's close rows run on its float32 graph
    (see `infer`), so its accuracy is measured as infer would label."""
    from tasktool import runtime
    from tasktool.errors import TaskToolError
    from tasktool.io.readers import Source, parse_delimiter
    from tasktool.recipes import recipe_fields, resolve_recipe
    from tasktool.tasks.registry import resolve
    from tasktool.training.recipe import parse_overrides, read_yaml

    spec = resolve(task)
    if "evaluate" not in spec.modes:
        raise TaskToolError(f"'evaluate' is not available for task '{spec.name}' yet", "see `tasktool tasks`")
    if bool(data) == bool(dataset):
        raise TaskToolError("give the evaluation data one way: --data FILE or --dataset NAME", "exactly one")
    if device not in runtime.DEVICES:
        raise TaskToolError(f"invalid --device '{device}'", f"choose one of {', '.join(runtime.DEVICES)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise TaskToolError(f"--batch-size must be at least 1, got {batch_size}", "e.g. --batch-size 32")
    if recheck_margin is not None:
        from tasktool.options import InferOptions, check_options

        check_options(spec, InferOptions(recheck_margin=recheck_margin))
    ref = model or spec.default_model
    if not smoke:  # a missing folder or an unreachable Hub id fails now, before the data is read
        ref = runtime.check_model_ref(ref)
    recipe = resolve_recipe(spec.name)
    saved = Path(ref).expanduser() / "recipe.yaml"
    if saved.is_file():  # a tasktool-trained folder: evaluate with its own settings (stride, label names)
        recipe.update(read_yaml(saved, recipe_fields(spec.name)))
    recipe.update(parse_overrides(list(overrides or []), recipe_fields(spec.name)))
    if strict:
        recipe["strict"] = True
    recipe["allow_absolute_paths"] = allow_absolute_paths  # this call's flag, never the saved recipe's
    if chat_template:
        recipe["chat_template"] = chat_template
    delimiter = parse_delimiter(delimiter)
    source = (
        Source(data, delimiter=delimiter)
        if data
        else Source(dataset, split, config=dataset_config, delimiter=delimiter)
    )
    examples = spec.reader(recipe, columns).read(source)
    if smoke:
        from tasktool.tiny.shrink import SMOKE_EXAMPLES, shrunk_model, smoke_dir, smoke_positions

        examples = examples[:SMOKE_EXAMPLES]
        labels = None
        if not Path(ref).expanduser().is_dir() and "finetune" in spec.modes:
            # the real model's labels are unknown offline: the stand-in knows the data's
            labels = spec.load_trainer()(spec, recipe, columns or {}, quiet=True).label_set(examples)
        folder = smoke_dir(keep=keep) / "model"
        ref = str(shrunk_model(spec, ref, folder, None, smoke_positions(recipe), labels))
    ref = runtime.check_model_ref(ref)
    evaluator = spec.evaluator(recipe)
    evaluator.allow_pickle, evaluator.trust_remote_code = allow_pickle, trust_remote_code
    evaluator.recheck_margin = recheck_margin
    metrics, records = evaluator.evaluate(ref, examples, batch_size=batch_size, device=device)
    if not return_predictions:
        return metrics
    from tasktool.io.records import record_jsonable

    return metrics, [record_jsonable(r) for r in records]  # as `--predictions` writes them


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


def serve(
    task: str,
    model: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    max_batch_size: int = 32,
    max_batch_tokens: int | None = None,
    max_wait_ms: float = 5.0,
    max_request_mb: float = 20.0,
    max_inputs: int = 256,
    timeout_s: float = 60.0,
    max_queue: int = 4096,
    allow_urls: bool = True,
    graceful_timeout_s: float = 8.0,
    access_log: bool = False,
    quiet: bool = False,
    **options: Any,
) -> dict:
    """Serve `task`'s model over HTTP until SIGTERM / Ctrl-C; returns the final request counters.

    POST /v1/infer answers {"records": [...]}: the records `tasktool infer` writes for the same inputs.
    Requests arriving within `max_wait_ms` of each other run as one engine batch (up to
    `max_batch_size` inputs). `api_key` (or TASKTOOL_API_KEY) is then required on every request.
    `options` are the infer options (device, dtype, top_k, max_length, ...; see InferOptions)."""
    import os

    from tasktool.errors import TaskToolError
    from tasktool.options import InferOptions, check_options
    from tasktool.tasks.registry import resolve

    spec = resolve(task)
    if "infer" not in spec.modes:
        raise TaskToolError(f"'infer' is not available for task '{spec.name}'", "see `tasktool tasks`")
    for name, value, least in (
        ("--max-batch-size", max_batch_size, 1),
        ("--max-inputs", max_inputs, 1),
        ("--max-request-mb", max_request_mb, 0.001),
        ("--timeout", timeout_s, 0.001),
        ("--max-queue", max_queue, 1),
    ):
        if value < least:
            raise TaskToolError(f"{name} must be positive, got {value}")
    if max_wait_ms < 0:
        raise TaskToolError("--max-wait-ms cannot be negative", "0 runs each request as soon as it comes")
    if not 0 <= port <= 65535:
        raise TaskToolError(f"--port {port} is not a port number", "use 1-65535 (0: any free port)")
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise TaskToolError(
            f"serving needs {exc.name}",
            "pip install fastapi uvicorn python-multipart (tasktool's dependencies)",
        ) from exc
    from tasktool.serve.limits import API_KEY_ENV, Limits
    from tasktool.serve.server import run

    limits = Limits(
        api_key=api_key or os.environ.get(API_KEY_ENV) or None,
        max_request_mb=max_request_mb,
        max_inputs=max_inputs,
        timeout_s=timeout_s,
        max_queue=max_queue,
        allow_urls=allow_urls,
    )
    opts = InferOptions(model=model, **options)
    check_options(spec, opts)
    if not opts.model:
        opts.model = spec.default_model
    from tasktool import runtime

    opts.model = runtime.check_model_ref(opts.model)
    return run(
        spec,
        opts,
        host=host,
        port=port,
        limits=limits,
        max_batch_size=max_batch_size,
        max_batch_tokens=max_batch_tokens,
        max_wait_ms=max_wait_ms,
        graceful_timeout_s=graceful_timeout_s,
        access_log=access_log,
        quiet=quiet,
    )


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
