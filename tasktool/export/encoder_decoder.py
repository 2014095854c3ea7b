"""Export an encoder-decoder (text to text: BART, T5, Marian; speech to text: Whisper)
as two ONNX graphs that transformers' own `generate` drives (tasktool/onnx_generation.py), as optimum does.

- `encoder.onnx`: the encoder, then one decoder step on a placeholder token only to fill the cross-attention
  cache through the model's own code (whatever the architecture names its projections); outputs the
  encoder's last hidden state and every decoder layer's cross-attention keys and values.
- `decoder.onnx`: new decoder tokens, the encoder's padding mask, the self-attention keys and values so far
  (length 0 on the first step) and the cross-attention ones; outputs the logits and the self-attention keys
  and values with the new tokens' (they replace the cache's: one copy per step, the graph's own
  concatenation, instead of a second one in generate's cache).

Both are traced with `torch.onnx.export` (TorchScript, eager attention) and checked against the torch model
on inputs of other shapes: the encoder's outputs, and the decoder's logits over a first step and a step with
a cache. `--quantize int8` runs `quantize_dynamic` on both graphs. ONNX Runtime applies its own graph
optimizations when it loads them; the transformer fusions of `--optimize` are for encoder graphs.
"""

from __future__ import annotations

from pathlib import Path

from tasktool.errors import TaskToolError
from tasktool.export.graph_tools import (
    cache_holding,
    graph_runs,
    quantize_file,
    quiet_export,
    run_graph,
    run_with_cache,
    trace_to_onnx,
)
from tasktool.onnx_generation import cross_names, flat, pairs, past_names, present_names

FILES = {
    "fp32": ("encoder.onnx", "decoder.onnx"),
    "int8": ("encoder_int8.onnx", "decoder_int8.onnx"),
}
TOLERANCE = 1e-3


def build_graphs(model, encoder_inputs: list[str]):
    """The two torch modules traced: (encoder graph, decoder graph)."""
    import torch

    start = int(model.generation_config.decoder_start_token_id or 0)

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            inputs = dict(zip(encoder_inputs, tensors, strict=True))
            hidden = self.model.get_encoder()(**inputs).last_hidden_state
            ids = torch.full((hidden.shape[0], 1), start, dtype=torch.long, device=hidden.device)
            _, cache = run_with_cache(
                self.model,
                encoder_outputs=(hidden,),
                attention_mask=inputs.get("attention_mask"),
                decoder_input_ids=ids,
                cache=cache_holding(),
            )
            return (hidden, *flat(cache.cross_attention_cache))

    class Decoder(torch.nn.Module):
        def __init__(self, layers: int, width: int):
            super().__init__()
            self.model, self.layers, self.width = model, layers, width

        def forward(self, decoder_input_ids, encoder_attention_mask, *kv):
            n = 2 * self.layers
            cache = cache_holding(pairs(kv[:n]), pairs(kv[n:]))
            batch, source = decoder_input_ids.shape[0], kv[n].shape[2]
            # the encoder's states are only read for their shape: cross-attention reads the cache
            hidden = torch.zeros(batch, source, self.width, dtype=kv[n].dtype)
            mask = encoder_attention_mask if "attention_mask" in encoder_inputs else None
            out, cache = run_with_cache(
                self.model,
                encoder_outputs=(hidden,),
                attention_mask=mask,
                decoder_input_ids=decoder_input_ids,
                cache=cache,
            )
            return (out.logits, *flat(cache.self_attention_cache))  # replaces the cache given

    return Encoder().eval(), Decoder


def export_graphs(model, encoder_inputs: list[str], trace: dict, check: dict, work: Path, opset: int) -> None:
    """Write encoder.onnx and decoder.onnx into `work`, each checked against the torch model."""
    import torch

    encoder, decoder_class = build_graphs(model, encoder_inputs)
    with torch.inference_mode():
        traced = encoder(*(trace[n] for n in encoder_inputs))
    layers = (len(traced) - 1) // 2
    width = int(traced[0].shape[-1])
    decoder = decoder_class(layers, width).eval()
    enc_axes = {"input_ids": {0: "batch", 1: "source"}, "attention_mask": {0: "batch", 1: "source"}}
    enc_axes["input_features"] = {0: "batch"}
    dynamic = {n: enc_axes.get(n, {0: "batch"}) for n in encoder_inputs}
    dynamic["last_hidden_state"] = {0: "batch", 1: "states"}
    dynamic.update({n: {0: "batch", 2: "states"} for n in cross_names(layers)})
    trace_to_onnx(
        encoder,
        [trace[n] for n in encoder_inputs],
        work / FILES["fp32"][0],
        encoder_inputs,
        ["last_hidden_state", *cross_names(layers)],
        dynamic,
        opset,
    )
    batch = traced[0].shape[0]
    ids = torch.full((batch, 2), int(model.generation_config.decoder_start_token_id or 0), dtype=torch.long)
    past = [torch.zeros(batch, t.shape[1], 3, t.shape[3]) + 0.1 for t in traced[1:]]
    mask = trace.get("attention_mask", torch.ones(batch, traced[0].shape[1], dtype=torch.long))
    names = ["decoder_input_ids", "encoder_attention_mask", *past_names(layers), *cross_names(layers)]
    dynamic = {
        "decoder_input_ids": {0: "batch", 1: "new"},
        "encoder_attention_mask": {0: "batch", 1: "source"},
        **{n: {0: "batch", 2: "past"} for n in past_names(layers)},
        **{n: {0: "batch", 2: "states"} for n in cross_names(layers)},
        "logits": {0: "batch", 1: "new"},
        **{n: {0: "batch", 2: "total"} for n in present_names(layers)},
    }
    trace_to_onnx(
        decoder,
        [ids, mask, *past, *traced[1:]],
        work / FILES["fp32"][1],
        names,
        ["logits", *present_names(layers)],
        dynamic,
        opset,
    )
    model.eval()  # the exporter restores the wrappers' train flags on every submodule
    with quiet_export():
        check_graphs(model, encoder_inputs, check, work, FILES["fp32"], TOLERANCE)


def check_graphs(model, encoder_inputs, inputs: dict, work: Path, files, tolerance: float | None) -> None:
    """Run both graphs as generate would (encoder, a first decoder step, a step with a cache) on inputs
    of a shape they were not traced with; compare with the torch model (tolerance None: finite only)."""
    import numpy as np
    import torch

    what = "the int8 graphs" if tolerance is None else "the exported graphs"
    with graph_runs(what):
        encoded = run_graph(work / files[0], {n: inputs[n].numpy() for n in encoder_inputs})
        batch, source = encoded[0].shape[:2]
        layers = (len(encoded) - 1) // 2
        start = int(model.generation_config.decoder_start_token_id or 0)
        steps = [np.full((batch, 1), start, dtype=np.int64), np.full((batch, 2), 5, dtype=np.int64)]
        mask = (
            inputs["attention_mask"].numpy()
            if "attention_mask" in inputs
            else np.ones((batch, source), np.int64)
        )
        heads, size = encoded[1].shape[1], encoded[1].shape[3]
        past = [np.zeros((batch, heads, 0, size), np.float32) for _ in range(2 * layers)]
        logits = []
        for ids in steps:
            feed = {"decoder_input_ids": ids, "encoder_attention_mask": mask}
            feed.update(zip(past_names(layers), past, strict=True))
            feed.update(zip(cross_names(layers), encoded[1:], strict=True))
            out = run_graph(work / files[1], feed)
            logits.append(out[0])
            past = out[1:]
    got = np.concatenate(logits, axis=1)
    if tolerance is None:
        if not np.isfinite(got).all():
            raise TaskToolError(f"{what} give non-finite logits", "export without --quantize", exit_code=1)
        return
    ids = torch.from_numpy(np.concatenate(steps, axis=1))
    with torch.inference_mode():
        want = model(**{n: inputs[n] for n in encoder_inputs}, decoder_input_ids=ids).logits.float().numpy()
    diff = float(np.abs(want - got).max()) if want.shape == got.shape else float("inf")
    if not diff <= tolerance:
        raise TaskToolError(
            f"{what} differ from the torch model by {diff:.2g} in the logits (more than {tolerance:g})",
            "this architecture does not export correctly yet; rerun with --debug",
            exit_code=1,
        )


def quantize_graphs(model, encoder_inputs, inputs: dict, work: Path) -> None:
    for source, target in zip(FILES["fp32"], FILES["int8"], strict=True):
        quantize_file(work / source, work / target)
    check_graphs(model, encoder_inputs, inputs, work, FILES["int8"], None)
