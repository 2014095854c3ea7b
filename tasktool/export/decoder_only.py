"""Export a decoder-only language model (GPT-2 style) as one ONNX graph with a key/value cache, which
transformers' own `generate` drives (tasktool/onnx_generation.py), as optimum's ORTModelForCausalLM does.

`decoder.onnx`: new tokens, the attention mask over the cache and them, their position ids, and each
layer's keys and values so far (length 0 on the first step); outputs the last position's logits (all that
greedy, sampling and beam search read: generate asks the torch model for the same with `logits_to_keep=1`)
and the keys and values of the cache and the new tokens (which replace the cache given: one copy per step,
the graph's own concatenation, instead of a second one in generate's cache). Traced with `torch.onnx.export` (TorchScript, eager attention) and
checked against the torch model on a left-padded prompt batch and a step with a cache, shapes it was not
traced with. `--quantize int8` runs `quantize_dynamic` on it.
"""

from __future__ import annotations

from pathlib import Path

from tasktool.errors import TaskToolError, first_line
from tasktool.export.graph_tools import cache_holding, quantize_file, run_graph, run_with_cache, trace_to_onnx
from tasktool.onnx_generation import flat, pairs, past_names, present_names
from tasktool.onnx_generation import positions as position_ids

FILES = {"fp32": "decoder.onnx", "int8": "decoder_int8.onnx"}
INPUTS = ["input_ids", "attention_mask", "position_ids"]
TOLERANCE = 1e-3


def build_graph(model):
    import torch

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, position_ids, *kv):
            out, cache = run_with_cache(
                self.model,
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                cache=cache_holding(pairs(kv)).self_attention_cache,
                logits_to_keep=1,
            )
            return (out.logits, *flat(cache))  # the whole cache: it replaces the one given

    return Decoder().eval()


def _shape(model) -> tuple[int, int, int]:
    """(layers, key/value heads, head size) of the model's cache, from one step on two tokens."""
    import torch
    from transformers import DynamicCache

    ids = torch.zeros((1, 2), dtype=torch.long)
    with torch.inference_mode():
        _, cache = run_with_cache(
            model, input_ids=ids, attention_mask=torch.ones_like(ids), cache=DynamicCache()
        )
    keys = cache.layers[0].keys
    return len(cache.layers), int(keys.shape[1]), int(keys.shape[3])


def export_graph(model, trace: dict, check: dict, work: Path, opset: int) -> None:
    import torch

    layers, heads, size = _shape(model)
    batch, new = trace["input_ids"].shape
    past = [torch.zeros(batch, heads, 3, size) + 0.1 for _ in range(2 * layers)]
    mask = torch.cat([torch.ones(batch, 3, dtype=torch.long), trace["attention_mask"]], dim=1)
    positions = position_ids(mask)[:, -new:]
    dynamic = {
        "input_ids": {0: "batch", 1: "new"},
        "attention_mask": {0: "batch", 1: "total"},
        "position_ids": {0: "batch", 1: "new"},
        **{n: {0: "batch", 2: "past"} for n in past_names(layers)},
        "logits": {0: "batch"},
        **{n: {0: "batch", 2: "total"} for n in present_names(layers)},
    }
    trace_to_onnx(
        build_graph(model),
        [trace["input_ids"], mask, positions, *past],
        work / FILES["fp32"],
        [*INPUTS, *past_names(layers)],
        ["logits", *present_names(layers)],
        dynamic,
        opset,
    )
    model.eval()  # the exporter restores the wrapper's train flag on every submodule
    check_graph(model, check, work / FILES["fp32"], TOLERANCE)


def check_graph(model, inputs: dict, path: Path, tolerance: float | None) -> None:
    """The graph on a left-padded prompt batch, then one step with the cache, against the torch model's
    full forward over the same tokens (tolerance None: finite logits only)."""
    import numpy as np
    import torch

    what = "the int8 graph" if tolerance is None else "the exported graph"
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    batch = ids.shape[0]
    layers, heads, size = _shape(model)
    empty = np.zeros((batch, heads, 0, size), np.float32)
    step = torch.full((batch, 1), 7, dtype=torch.long)
    full_ids = torch.cat([ids, step], dim=1)
    full_mask = torch.cat([mask, torch.ones_like(step)], dim=1)
    positions = position_ids(full_mask)
    try:
        first = run_graph(
            path,
            {
                "input_ids": ids.numpy(),
                "attention_mask": mask.numpy(),
                "position_ids": positions[:, :-1].numpy(),
                **dict.fromkeys(past_names(layers), empty),
            },
        )
        feed = {
            "input_ids": step.numpy(),
            "attention_mask": full_mask.numpy(),
            "position_ids": positions[:, -1:].numpy(),
        }
        feed.update(zip(past_names(layers), first[1:], strict=True))
        second = run_graph(path, feed)
    except Exception as exc:  # noqa: BLE001
        line = first_line(exc)
        raise TaskToolError(
            f"{what} does not run in ONNX Runtime: {line}", "rerun with --debug", exit_code=1
        ) from exc
    got = np.concatenate([first[0][:, -1], second[0][:, -1]], axis=0)
    if tolerance is None:
        if not np.isfinite(got).all():
            raise TaskToolError(f"{what} gives non-finite logits", "export without --quantize", exit_code=1)
        return
    with torch.inference_mode():
        prompt = model(input_ids=ids, attention_mask=mask, position_ids=positions[:, :-1]).logits[:, -1]
        after = model(input_ids=full_ids, attention_mask=full_mask, position_ids=positions).logits[:, -1]
    want = torch.cat([prompt, after], dim=0).float().numpy()
    diff = float(np.abs(want - got).max())
    if not diff <= tolerance:
        raise TaskToolError(
            f"{what} differs from the torch model by {diff:.2g} in the logits (more than {tolerance:g})",
            "this architecture does not export correctly yet; rerun with --debug",
            exit_code=1,
        )


def quantize_graph(model, inputs: dict, work: Path) -> None:
    quantize_file(work / FILES["fp32"], work / FILES["int8"])
    check_graph(model, inputs, work / FILES["int8"], None)
