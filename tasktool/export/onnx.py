"""Export a task's model to ONNX, optimize it with ONNX Runtime's transformer fusions, quantize it to int8.

The steps are the field's tools, in the order optimum runs them:

1. `torch.onnx.export` (the TorchScript exporter, `dynamo=False`: the dynamo exporter needs onnxscript,
   and onnxruntime's fusions are written against TorchScript graphs), opset 17, batch and sequence axes
   dynamic. BERT-family encoders run with eager attention and the padding mask given as the classic
   additive 4D mask (the model takes a 4D mask as it is): transformers 5 builds its own mask with ops
   onnxruntime's attention fusion does not recognise, and the graph computes the same numbers.
2. `onnxruntime.transformers.optimizer.optimize_model`: O1 = ONNX Runtime's basic graph optimizations;
   O2 = O1 + the transformer fusions (Attention, EmbedLayerNormalization, BiasGelu); O3 = O2 + GELU
   approximated by FastGelu (not bit-identical to the torch model). The residual Add and LayerNormalization
   stay two nodes (`enable_skip_layer_norm=False`): ONNX Runtime 1.32's fused SkipLayerNormalization
   CPU kernel took 4x the time of the two it replaces, about 6% of a MiniLM run
   (benchmarks/README.md, "Layer norms unfused"); a CUDA session fuses them itself at load
   (backends.py, `session_options`).
3. `onnxruntime.quantization.quantize_dynamic`: int8 weights, activations quantized per run.

Every graph is run once on inputs of a shape it was not traced with and compared with the torch model
(the int8 one only for shape: its numbers differ by design; benchmarks/onnx_speed.py measures its agreement).
The folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
from pathlib import Path

from tasktool.accel import first_token
from tasktool.errors import TaskToolError, first_line
from tasktool.export.graph_tools import graph_runs, quantize_file, quiet_export, run_graph, trace_to_onnx

log = logging.getLogger(__name__)

OPSET = 17
OPTIMIZE_LEVELS = ("O1", "O2", "O3")
QUANTIZE_MODES = ("int8",)
FILES = {"fp32": "model.onnx", "optimized": "model_optimized.onnx", "int8": "model_int8.onnx"}

# The heads tasktool exports, by the task's transformers Auto class: (input kind, outputs, outputs per token)
HEADS = {
    "AutoModelForSequenceClassification": ("text", ("logits",), False),
    "AutoModelForTokenClassification": ("text", ("logits",), True),
    "AutoModelForQuestionAnswering": ("text", ("start_logits", "end_logits"), True),
    "AutoModelForMaskedLM": ("text", ("logits",), True),
    "AutoModelForAudioClassification": ("audio", ("logits",), False),
    "AutoModelForImageClassification": ("image", ("logits",), False),
    "AutoModelForSeq2SeqLM": ("text", ("logits",), True),
    "AutoModelForSpeechSeq2Seq": ("audio", ("logits",), True),
    "AutoModelForCausalLM": ("text", ("logits",), True),
}
# heads exported as an encoder graph and a decoder graph that generate drives (export/encoder_decoder.py)
ENCODER_DECODER = {"AutoModelForSeq2SeqLM", "AutoModelForSpeechSeq2Seq"}
# heads exported as one decoder graph with a key/value cache that generate drives (export/decoder_only.py)
DECODER_ONLY = {"AutoModelForCausalLM"}

# encoders that take the padding mask as a 4D additive mask unchanged, and whose graph onnxruntime's
# "bert" optimizer fuses (attention, embeddings with their layer norm, GELU)
BERT_LIKE = {"bert", "roberta", "xlm-roberta", "electra", "camembert", "distilbert"}
# onnxruntime optimizer model types for the other architectures it knows
OPTIMIZER_TYPES = {"vit": "vit", "deit": "vit", "swin": "swin"}

# what the graphs hold beyond the options: part of the --backend onnxruntime cache key, so a cache written
# by an earlier tasktool (fused SkipLayerNormalization, last layer over every token) is exported again
GRAPHS_REVISION = (
    "2026-12-05: sentence classifiers' last layer at the first token; Add + LayerNormalization unfused"
)

# largest difference from the torch model accepted per graph (logits); O3's approximated GELU moves more
TOLERANCE = {"fp32": 1e-3, "O1": 1e-3, "O2": 1e-3, "O3": 2e-2}


def supported_tasks() -> list[str]:
    from tasktool.tasks.registry import TASKS

    return [name for name, spec in TASKS.items() if spec.model_class in HEADS]


def check_supported(spec) -> None:
    if spec.model_class not in HEADS:
        raise TaskToolError(
            f"export of {spec.name} is not supported yet",
            f"tasktool exports {', '.join(supported_tasks())}",
        )


def check_choices(optimize: str | None, quantize: str | None) -> None:
    if optimize is not None and optimize not in OPTIMIZE_LEVELS:
        raise TaskToolError(
            f"unknown --optimize level '{optimize}'", f"choose one of {', '.join(OPTIMIZE_LEVELS)}"
        )
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise TaskToolError(f"unknown --quantize mode '{quantize}'", f"choose {', '.join(QUANTIZE_MODES)}")


def export_onnx(
    spec,
    model: str,
    output_dir: str | Path,
    *,
    optimize: str | None = None,
    quantize: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    opset: int = OPSET,
    strict: bool = True,
) -> dict:
    """Export `model` for task `spec` into the new folder `output_dir`; returns the manifest written.

    strict=False (the infer cache): an optimizer that fails leaves the fp32 graph as the default
    instead of stopping the export."""
    from tasktool import backends, runtime

    check_supported(spec)
    check_choices(optimize, quantize)
    out = Path(output_dir).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TaskToolError(
            f"output folder '{output_dir}' already exists", "choose a new folder, or remove this one first"
        )
    ref = runtime.check_model_ref(model)
    if backends.is_exported(ref):
        raise TaskToolError(
            f"'{model}' is already an ONNX export", "export from the torch model it came from"
        )
    _check_installed()
    kind, outputs, per_token = HEADS[spec.model_class]
    encoder_decoder = spec.model_class in ENCODER_DECODER
    generator = encoder_decoder or spec.model_class in DECODER_ONLY
    if generator:  # before loading: a CTC speech model would not load as a sequence-to-sequence one
        config = runtime.load_config(ref, revision, trust_remote_code)
        optimize = _check_generator(config, optimize, strict, encoder_decoder)
    torch_model = runtime.load_model(
        spec,
        ref,
        revision=revision,
        device="cpu",
        dtype="float32",
        trust_remote_code=trust_remote_code,
        allow_pickle=allow_pickle,
        attn_implementation="eager",  # the attention onnxruntime's fusions recognise
    )
    preprocessor = _load_preprocessor(kind, ref, revision, trust_remote_code, encoder_decoder)
    sample = _prompts if spec.model_class in DECODER_ONLY else _sample_inputs
    trace_inputs = sample(kind, preprocessor, torch_model, rows=2)
    check_inputs = sample(kind, preprocessor, torch_model, rows=3)
    names = list(trace_inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        if encoder_decoder:
            manifest = _export_encoder_decoder(
                spec, torch_model, names, trace_inputs, check_inputs, work, opset, quantize
            )
        elif generator:
            manifest = _export_decoder_only(
                spec, torch_model, trace_inputs, check_inputs, work, opset, quantize
            )
        else:
            manifest = _export(
                spec, torch_model, kind, names, outputs, per_token, trace_inputs, check_inputs, work, opset
            )
        if optimize and not generator:
            try:
                _optimize(work, torch_model, optimize, check_inputs, outputs)
                manifest["files"]["optimized"] = FILES["optimized"]
                manifest["default"] = FILES["optimized"]
                manifest["optimize"] = optimize
            except TaskToolError:
                if strict:
                    raise
        if quantize and not generator:
            _quantize(work, manifest["default"], check_inputs, outputs)
            manifest["files"]["int8"] = FILES["int8"]
            manifest["default"] = FILES["int8"]
            manifest["quantize"] = quantize
        manifest["source_model"] = model
        torch_model.config.save_pretrained(work)
        if generator:  # the generation settings generate reads (start token, lengths, languages)
            torch_model.generation_config.save_pretrained(work)
        preprocessor.save_pretrained(work)
        for extra in ("recipe.yaml",):  # a tasktool-trained folder's settings (evaluate reads them)
            if (Path(ref) / extra).is_file():
                shutil.copy2(Path(ref) / extra, work / extra)
        (work / backends.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        (work / "README.md").write_text(_card(spec, manifest), encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked above)
        work.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return manifest


def _check_installed() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise TaskToolError(
            f"exporting needs onnx and onnxruntime ({exc.name} is not installed)",
            "pip install onnx onnxruntime",
        ) from exc


def _load_preprocessor(kind: str, ref: str, revision, trust_remote_code: bool, generates: bool = False):
    """The files inference needs beside the graph; a generating speech model also needs its tokenizer,
    so it gets the whole processor (the feature extractor is the processor's)."""
    from tasktool import runtime

    if kind == "text":
        return runtime.load_tokenizer(ref, revision=revision, trust_remote_code=trust_remote_code)
    from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoProcessor

    if generates:
        with runtime.hub_errors(ref, "processor"):
            processor = AutoProcessor.from_pretrained(
                ref, revision=revision, trust_remote_code=trust_remote_code
            )
        return _WithFeatures(processor)

    cls, what = (
        (AutoFeatureExtractor, "feature extractor")
        if kind == "audio"
        else (AutoImageProcessor, "image processor")
    )
    with runtime.hub_errors(ref, what):
        return cls.from_pretrained(ref, revision=revision, trust_remote_code=trust_remote_code)


def _sample_inputs(kind: str, preprocessor, model, rows: int) -> dict:
    """A padded batch of `rows` inputs of different lengths, as the task's predictor feeds them."""
    import numpy as np
    import torch

    if kind == "text":
        texts = ["tasktool export", "a longer sentence, to trace the graph with some padding", "one"][:rows]
        enc = preprocessor(texts, padding=True, return_tensors="pt")
    elif kind == "audio":
        rate = int(preprocessor.sampling_rate)
        clips = [
            np.sin(np.arange(int(rate * s)) * f / rate).astype(np.float32)
            for s, f in ((1.0, 2000), (0.6, 900), (0.8, 400))
        ]
        pad_ok = bool(getattr(preprocessor, "return_attention_mask", False))
        enc = preprocessor(
            clips[:rows], sampling_rate=rate, padding=True, return_tensors="pt", return_attention_mask=pad_ok
        )
    else:
        from PIL import Image

        rng = np.random.default_rng(rows)
        images = [
            Image.fromarray(rng.integers(0, 255, (48 + 8 * i, 64, 3), dtype=np.uint8)) for i in range(rows)
        ]
        enc = preprocessor(images=images, return_tensors="pt")
    accepted = list(inspect.signature(model.forward).parameters)
    inputs = {}
    for name in accepted:  # the forward's order: the graph's inputs follow it
        if name in enc:
            value = enc[name]
            inputs[name] = value.to(torch.float32) if value.is_floating_point() else value.to(torch.int64)
    return inputs


class _Graph:
    """The torch module traced: named inputs in, the task's outputs out (a tuple, as ONNX wants)."""

    @staticmethod
    def build(model, names: list[str], outputs: tuple[str, ...], additive_mask: bool):
        import torch

        class Graph(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, *tensors):
                inputs = dict(zip(names, tensors, strict=True))
                if additive_mask and "attention_mask" in inputs:
                    inputs["attention_mask"] = _additive_mask(inputs["attention_mask"])
                result = self.model(**inputs)
                return tuple(getattr(result, name) for name in outputs)

        return Graph().eval()


def _additive_mask(mask):
    """The padding mask as the 4D additive mask BERT used to build (0 where attended, float min where
    padded), in the form onnxruntime's attention fusion matches (Where(Cast(Sub(1, Expand(mask)))))."""
    import torch

    length = mask.shape[1]
    expanded = mask[:, None, None, :].expand(-1, 1, length, -1).to(torch.float32)
    inverted = 1.0 - expanded
    return inverted.masked_fill(inverted.to(torch.bool), torch.finfo(torch.float32).min)


def _export(spec, model, kind, names, outputs, per_token, trace_inputs, check_inputs, work: Path, opset: int):
    model_type = getattr(model.config, "model_type", "")
    additive_mask = kind == "text" and model_type in BERT_LIKE
    graph = _Graph.build(model, names, outputs, additive_mask)
    axes = {"text": {0: "batch", 1: "sequence"}, "audio": {0: "batch", 1: "samples"}}.get(
        kind, {0: "batch", 2: "height", 3: "width"}
    )
    dynamic = {name: dict(axes) if trace_inputs[name].dim() > 1 else {0: "batch"} for name in names}
    for name in outputs:
        dynamic[name] = {0: "batch", 1: "sequence"} if per_token else {0: "batch"}
    path = work / FILES["fp32"]
    first = _first_token_only(model)
    try:
        trace_to_onnx(graph, [trace_inputs[n] for n in names], path, names, list(outputs), dynamic, opset)
    finally:
        if first:
            first_token.remove(model)  # the graphs are checked against the model's own forward
    model.eval()  # the exporter restores the wrapper's train flag on every submodule
    _compare(path, model, check_inputs, outputs, TOLERANCE["fp32"], "the exported graph")
    manifest = _manifest(spec, model, names, list(outputs), {"fp32": FILES["fp32"]}, FILES["fp32"], opset)
    manifest["last_layer"] = "first token only" if first else "every token"
    manifest["graphs_revision"] = GRAPHS_REVISION
    return manifest


def _first_token_only(model) -> bool:
    """A BERT-style sentence classifier's graph computes its last layer at the first token only, the
    one its head reads (tasktool.accel.first_token, as tasktool's torch inference runs it): the same
    logits for 13% less arithmetic on short sentences in a 6-layer model (README.md, "Export and ONNX
    Runtime")."""
    if not first_token.apply(model):
        return False
    log.debug("export: the last layer computes the first token only (tasktool.accel.first_token)")
    return True


def _manifest(
    spec, model, names: list[str], outputs: list[str], files: dict, default: str, opset: int
) -> dict:
    import onnx
    import onnxruntime
    import torch
    import transformers

    from tasktool.backends import tasktool_version

    return {
        "format": "onnx",
        "task": spec.name,
        "architecture": type(model).__name__,
        "model_type": getattr(model.config, "model_type", ""),
        "opset": opset,
        "inputs": names,
        "outputs": outputs,
        "files": files,
        "default": default,
        "optimize": None,
        "quantize": None,
        "tasktool_version": tasktool_version(),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
    }


class _WithFeatures:
    """A processor whose call the export's sample inputs use as its feature extractor's, and whose files
    are all saved (tokenizer included)."""

    def __init__(self, processor):
        self.processor = processor
        self.sampling_rate = processor.feature_extractor.sampling_rate
        self.return_attention_mask = getattr(processor.feature_extractor, "return_attention_mask", False)

    def __call__(self, *args, **kwargs):
        kwargs.pop("padding", None)  # its own padding: Whisper's encoder takes 30 s windows only
        return self.processor.feature_extractor(*args, **kwargs)

    def save_pretrained(self, folder) -> None:
        self.processor.save_pretrained(folder)


def _check_generator(config, optimize: str | None, strict: bool, encoder_decoder: bool) -> str | None:
    """A generator exports without --optimize (ONNX Runtime optimizes its graphs when it loads them; the
    transformer fusions are for encoder graphs); a CTC speech model is not exported yet."""
    if encoder_decoder and not getattr(config, "is_encoder_decoder", False):
        raise TaskToolError(
            f"export of a {config.model_type} model (not an encoder-decoder) for this task is not supported yet",
            "export a Whisper-style encoder-decoder speech model, or run this one with torch",
        )
    if optimize and strict:
        raise TaskToolError(
            "--optimize applies to encoder models; a generator's graphs are optimized by ONNX "
            "Runtime when they load",
            "drop --optimize (--quantize int8 applies)",
        )
    return None


def _prompts(kind: str, tokenizer, model, rows: int) -> dict:
    """Prompts of different lengths, LEFT-padded as generate takes a batch (pad id 0, masked)."""
    import torch

    texts = ["tasktool export", "a longer prompt, to trace the graph with some padding", "one"][:rows]
    ids = [tokenizer(t)["input_ids"] or [0] for t in texts]
    width = max(len(row) for row in ids)
    return {
        "input_ids": torch.tensor([[0] * (width - len(row)) + row for row in ids]),
        "attention_mask": torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in ids]),
    }


def _export_decoder_only(spec, model, trace_inputs, check_inputs, work: Path, opset, quantize) -> dict:
    from tasktool.export import decoder_only as graph

    graph.export_graph(model, trace_inputs, check_inputs, work, opset)
    files = {"fp32": graph.FILES["fp32"]}
    manifest = _manifest(spec, model, graph.INPUTS, ["logits"], files, graph.FILES["fp32"], opset)
    manifest["graphs"] = "decoder-only"
    manifest["attention"] = graph.ATTENTION  # traced with it: the cache and new tokens apart (no copy)
    if quantize:
        graph.quantize_graph(model, check_inputs, work)
        files["int8"] = graph.FILES["int8"]
        manifest.update(default=graph.FILES["int8"], quantize=quantize)
    return manifest


def _export_encoder_decoder(
    spec, model, names, trace_inputs, check_inputs, work: Path, opset, quantize
) -> dict:
    from tasktool.export import encoder_decoder as graphs

    graphs.export_graphs(model, names, trace_inputs, check_inputs, work, opset)
    fp32_encoder, fp32_decoder = graphs.FILES["fp32"]
    files = {"fp32 encoder": fp32_encoder, "fp32": fp32_decoder}
    manifest = _manifest(spec, model, names, ["logits"], files, fp32_decoder, opset)
    manifest["graphs"] = "encoder-decoder"
    manifest["encoder"] = fp32_encoder
    if quantize:
        graphs.quantize_graphs(model, names, check_inputs, work)
        int8_encoder, int8_decoder = graphs.FILES["int8"]
        files.update({"int8 encoder": int8_encoder, "int8": int8_decoder})
        manifest.update(encoder=int8_encoder, default=int8_decoder, quantize=quantize)
    return manifest


def _heads_and_size(config) -> tuple[int, int]:
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", None) or 0
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", None) or 0
    return int(heads), int(hidden)


def _optimize(work: Path, model, level: str, check_inputs, outputs) -> None:
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    model_type = getattr(model.config, "model_type", "")
    ort_type = "bert" if model_type in BERT_LIKE else OPTIMIZER_TYPES.get(model_type)
    source, target = str(work / FILES["fp32"]), work / FILES["optimized"]
    with quiet_export():
        try:
            if level == "O1" or ort_type is None:  # no transformer fusions for this architecture
                optimized = optimize_model(source, opt_level=1 if level == "O1" else 2, only_onnxruntime=True)
            else:
                heads, hidden = _heads_and_size(model.config)
                options = FusionOptions(ort_type)
                options.enable_gelu_approximation = level == "O3"
                options.enable_skip_layer_norm = False  # see the module docstring, step 2
                optimized = optimize_model(
                    source,
                    model_type=ort_type,
                    num_heads=heads,
                    hidden_size=hidden,
                    optimization_options=options,
                    opt_level=1,
                )
            optimized.save_model_to_file(str(target))
        except Exception as exc:  # noqa: BLE001
            first = first_line(exc)
            raise TaskToolError(
                f"ONNX Runtime's optimizer failed on this model: {first}",
                "export without --optimize",
                exit_code=1,
            ) from exc
    _compare(target, model, check_inputs, outputs, TOLERANCE[level], f"the {level} graph")


def _quantize(work: Path, source: str, check_inputs, outputs) -> None:
    target = work / FILES["int8"]
    quantize_file(work / source, target)
    _compare(target, None, check_inputs, outputs, None, "the int8 graph")


def _run(path: Path, inputs: dict) -> list:
    return run_graph(path, {k: v.numpy() for k, v in inputs.items()})


def _compare(path: Path, model, inputs: dict, outputs, tolerance: float | None, what: str) -> None:
    """Run the graph on inputs of a shape it was not traced with; compare with the torch model."""
    import numpy as np
    import torch

    with graph_runs(what):
        got = _run(path, inputs)
    if model is None:
        bad = [o for o, g in zip(outputs, got, strict=True) if not np.isfinite(g).all()]
        if bad:
            raise TaskToolError(f"{what} gives non-finite {bad[0]}", "export without --quantize", exit_code=1)
        return
    with torch.inference_mode():
        result = model(**inputs)
    for name, array in zip(outputs, got, strict=True):
        want = getattr(result, name).float().numpy()
        if want.shape != array.shape:
            raise TaskToolError(
                f"{what} gives {name} of shape {array.shape}, the torch model {want.shape}",
                "this architecture does not export correctly yet",
                exit_code=1,
            )
        diff = float(np.abs(want - array).max())
        if not diff <= tolerance:
            raise TaskToolError(
                f"{what} differs from the torch model by {diff:.2g} in {name} (more than {tolerance:g})",
                "this architecture does not export correctly yet; rerun with --debug",
                exit_code=1,
            )


def _last_layer_line(manifest: dict) -> str:
    if manifest.get("last_layer") != "first token only":
        return ""
    return (
        "\nThe last layer computes the first token only, the one the classification head reads (same logits)."
    )


def _card(spec, manifest: dict) -> str:
    files = manifest["files"]
    rows = "\n".join(f"| `{name}` | {what} |" for what, name in files.items() if name)
    return f"""---
library_name: onnxruntime
pipeline_tag: {spec.name}
tags: [onnx, tasktool]
---

# {spec.name}: ONNX export of `{manifest["source_model"]}`

Exported by tasktool {manifest["tasktool_version"]} with `torch.onnx.export` (opset {manifest["opset"]}),
optimized with `onnxruntime.transformers.optimizer` ({manifest["optimize"] or "not optimized"}) and
quantized with `onnxruntime.quantization.quantize_dynamic` ({manifest["quantize"] or "not quantized"}).{_last_layer_line(manifest)}

| file | graph |
|---|---|
{rows}

`{manifest["default"]}` is what `tasktool infer` runs; the tokenizer or processor and `config.json`
(labels) are the source model's. Inputs: {", ".join(manifest["inputs"])}; outputs:
{", ".join(manifest["outputs"])}.

```bash
tasktool infer {spec.name} --model THIS_FOLDER ...
```

```python
import onnxruntime
session = onnxruntime.InferenceSession(
    "{manifest["default"]}",
    providers=["CPUExecutionProvider"],
    # on a CPU, as tasktool runs it: ONNX Runtime's fused SkipLayerNormalization is the slower there
    disabled_optimizers=["SkipLayerNormFusion"],
)
```
"""
