"""The ONNX steps the exporters share: tracing quietly, running a graph on numpy inputs, int8 quantization,
and the cache plumbing of the generators' graphs (a cache built from traced tensors, a step with it)."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

from tasktool.errors import TaskToolError, first_line


@contextlib.contextmanager
def quiet_export():
    """The TorchScript exporter's deprecation and tracer warnings say nothing the user can act on."""
    import logging

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(previous)


@contextlib.contextmanager
def graph_runs(what: str):
    """A just-exported graph that ONNX Runtime refuses to run, as one line (`what`: "the int8 graph"...)."""
    try:
        yield
    except TaskToolError:
        raise
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own exception types
        raise TaskToolError(
            f"ONNX Runtime cannot run {what}: {first_line(exc)}", "rerun with --debug", exit_code=1
        ) from exc


def quantize_file(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet_export():
        try:
            quantize_dynamic(
                str(source),
                str(target),
                weight_type=QuantType.QInt8,
                # a scale per output channel: on MiniLM with seeded heads, labels agreed with float32 on
                # 95.6% (classification) and 87.6% of tokens (NER) against 92.5% and 75.1% per tensor,
                # at the same speed (benchmarks/onnx_speed.py)
                per_channel=True,
                # fused ops (Attention, SkipLayerNormalization) are onnxruntime's own: shape inference
                # gives their outputs no type, and they are float32
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        except Exception as exc:  # noqa: BLE001
            first = first_line(exc)
            raise TaskToolError(
                f"ONNX Runtime's quantizer failed on this model: {first}",
                "export without --quantize",
                exit_code=1,
            ) from exc


def run_graph(path: Path, feed: dict) -> list:
    """The graph's outputs on numpy inputs (those it declares: the exporter drops inputs it never reads)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: feed[i.name] for i in session.get_inputs()})


def cache_holding(self_pairs=None, cross_pairs=None):
    """An EncoderDecoderCache holding the given (key, value) pairs per layer; cross pairs marked as
    computed, so the decoder's cross-attention reads them instead of projecting the encoder's states."""
    from transformers import DynamicCache, EncoderDecoderCache

    self_cache, cross_cache = DynamicCache(), DynamicCache()
    for i, (k, v) in enumerate(self_pairs or ()):
        self_cache.update(k, v, i)
    for i, (k, v) in enumerate(cross_pairs or ()):
        cross_cache.update(k, v, i)
    cache = EncoderDecoderCache(self_cache, cross_cache)
    for i in range(len(cross_pairs or ())):
        cache.is_updated[i] = True
    return cache


def run_with_cache(model, **inputs):
    """The model's forward with the cache under the name it takes (`cache` in transformers 5, the
    deprecated `past_key_values` before); returns (output, the cache after the step)."""
    import inspect

    cache = inputs.pop("cache")
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    out = model(**inputs, **{name: cache}, use_cache=True)
    return out, cache


def trace_to_onnx(module, args, path: Path, inputs, outputs, dynamic, opset) -> None:
    import torch

    with quiet_export():
        try:
            torch.onnx.export(
                module,
                tuple(args),
                str(path),
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=dynamic,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        except Exception as exc:  # noqa: BLE001 - the exporter's errors are long and varied
            first = first_line(exc)
            raise TaskToolError(
                f"torch.onnx.export failed for {type(module.model).__name__} ({path.name}): {first}",
                "this architecture may not export yet; rerun with --debug for details",
                exit_code=1,
            ) from exc
