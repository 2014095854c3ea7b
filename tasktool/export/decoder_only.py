"""Export a decoder-only language model (GPT-2 style) as one ONNX graph with a key/value cache, which
transformers' own `generate` drives (tasktool/onnx_generation.py), as optimum's ORTModelForCausalLM does.

`decoder.onnx`: new tokens, the attention mask over the cache's slots and them, their position ids, and each
layer's cache buffer; outputs the last position's logits (all that greedy, sampling and beam search read:
generate asks the torch model for the same with `logits_to_keep=1`) and the new tokens' keys and values
only. The cache is never empty: the first step reads one zero slot, masked (a zero-length cache would meet
ONNX Reshape's rule that a 0 in a target shape copies the input's size). The runtime keeps the cache in
buffers with room to spare and writes each step's keys and values into them in place, so no step copies
the cache (a graph that concatenated the new keys onto the cache spent a large share of each decode step
copying it: README).

For that the attention runs over the cache and the new tokens kept apart: a Cache subclass whose update
returns the two without concatenating them, and an attention function registered with transformers'
AttentionInterface (eager attention's arithmetic: scores against each, one softmax over both, the two
weighted sums added). Traced with `torch.onnx.export` (TorchScript) and checked against the torch model
(eager attention) on a left-padded prompt batch and a step with a cache, shapes it was not traced with.
`--quantize int8` runs `quantize_dynamic` on it.
"""

from __future__ import annotations

from pathlib import Path

from tasktool.errors import TaskToolError
from tasktool.export.graph_tools import graph_runs, quantize_file, run_graph, run_with_cache, trace_to_onnx
from tasktool.onnx_generation import new_names, pairs, past_names
from tasktool.onnx_generation import positions as position_ids

FILES = {"fp32": "decoder.onnx", "int8": "decoder_int8.onnx"}
INPUTS = ["input_ids", "attention_mask", "position_ids"]
TOLERANCE = 1e-3


ATTENTION = "tasktool_cache_apart"  # the attention the graph is traced with (registered on first export)


class _Apart:
    """A layer's keys (or values) as the cache so far and the new tokens', not concatenated."""

    def __init__(self, past, new):
        self.past, self.new = past, new


def attention_apart(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Eager attention over `key.past + key.new` without building that concatenation."""
    import torch

    if not isinstance(key, _Apart):  # no cache (a full forward): both parts are the given keys
        key, value = _Apart(key[..., :0, :], key), _Apart(value[..., :0, :], value)
    groups = getattr(module, "num_key_value_groups", 1)  # grouped-query attention: transformers' repeat_kv

    def heads(states):  # as transformers' repeat_kv: each key/value head serves `groups` query heads
        if groups == 1:
            return states
        return states.unsqueeze(2).expand(-1, -1, groups, -1, -1).flatten(1, 2)  # sizes read at run time

    past_k, new_k, past_v, new_v = (heads(t) for t in (key.past, key.new, value.past, value.new))
    scale = scaling if scaling is not None else query.size(-1) ** -0.5
    scores = torch.cat([query @ past_k.transpose(-1, -2), query @ new_k.transpose(-1, -2)], dim=-1) * scale
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = torch.softmax(scores, dim=-1).to(past_v.dtype)
    cut = past_k.shape[-2]
    out = weights[..., :cut] @ past_v + weights[..., cut:] @ new_v
    return out.transpose(1, 2), weights


def _register() -> None:
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import eager_mask

    AttentionInterface.register(ATTENTION, attention_apart)
    AttentionMaskInterface.register(ATTENTION, eager_mask)


def apart_cache(kv_pairs):
    """A DynamicCache holding the given (key, value) pairs whose update keeps the new tokens' keys and
    values apart (in `.new`, the graph's outputs) instead of concatenating them onto the cache."""
    from transformers import DynamicCache

    class ApartCache(DynamicCache):
        def update(self, key_states, value_states, layer_idx, *args, **kwargs):
            self.new[layer_idx] = (key_states, value_states)
            layer = self.layers[layer_idx]
            return _Apart(layer.keys, key_states), _Apart(layer.values, value_states)

    cache = ApartCache()
    cache.new = {}
    for i, (k, v) in enumerate(kv_pairs):
        DynamicCache.update(cache, k, v, i)
        cache.layers[i].keys, cache.layers[i].values = k, v  # the inputs themselves, no copy in the graph
    return cache


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
                cache=apart_cache(pairs(kv)),
                logits_to_keep=1,
            )
            return (out.logits, *(t for i in sorted(cache.new) for t in cache.new[i]))

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
        **{n: {0: "batch", 2: "new"} for n in new_names(layers)},
    }
    _register()
    model.set_attn_implementation(ATTENTION)
    try:
        trace_to_onnx(
            build_graph(model),
            [trace["input_ids"], mask, positions, *past],
            work / FILES["fp32"],
            [*INPUTS, *past_names(layers)],
            ["logits", *new_names(layers)],
            dynamic,
            opset,
        )
    finally:
        model.set_attn_implementation("eager")  # the check compares with eager attention
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
    slot = np.zeros((batch, heads, 1, size), np.float32)  # the first step's one empty, masked slot
    step = torch.full((batch, 1), 7, dtype=torch.long)
    full_ids = torch.cat([ids, step], dim=1)
    full_mask = torch.cat([mask, torch.ones_like(step)], dim=1)
    positions = position_ids(full_mask)
    with graph_runs(what):
        first = run_graph(
            path,
            {
                "input_ids": ids.numpy(),
                "attention_mask": np.concatenate([np.zeros((batch, 1), np.int64), mask.numpy()], axis=1),
                "position_ids": positions[:, :-1].numpy(),
                **dict.fromkeys(past_names(layers), slot),
            },
        )
        feed = {
            "input_ids": step.numpy(),
            "attention_mask": full_mask.numpy(),
            "position_ids": positions[:, -1:].numpy(),
        }
        feed.update(zip(past_names(layers), first[1:], strict=True))
        second = run_graph(path, feed)
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
