"""bfloat16 inference on CPU: fold GELU and the residual add into the matmul that precedes them.

In a BERT-family layer the feed-forward's GELU and both residual adds are separate passes over
large bf16 tensors, each costing a share of the matmul it follows on CPU. PyTorch's oneDNN linear
(the op inductor emits for CPU) applies them to the float32 accumulator before rounding to bf16: one
pass, and a rounding less. Float32 gains nothing from it (measured), so only bf16 models on CPU are
changed, and only the forward methods of the feed-forward and output blocks (weights and state dicts
stay as they are). (Figures: benchmarks/README.md.)
"""

from __future__ import annotations

import functools
import types

from tasktool.accel.layers import untested_transformers

# encoders whose intermediate / output blocks are BERT's (dense + GELU; dense + dropout + LayerNorm(x + res))
MODEL_TYPES = {"bert", "roberta", "xlm-roberta", "electra", "camembert"}


def _op():
    import torch

    try:
        return torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


def _intermediate_forward(self, hidden_states):
    shape = hidden_states.shape
    flat = hidden_states.reshape(-1, shape[-1])
    out = _op()(flat, self.dense.weight, self.dense.bias, "gelu", [], "none")
    return out.view(*shape[:-1], out.shape[-1])


def _output_forward(self, hidden_states, input_tensor):
    shape = input_tensor.shape
    summed = _op().binary(
        hidden_states.reshape(-1, hidden_states.shape[-1]),
        input_tensor.reshape(-1, shape[-1]),
        self.dense.weight,
        self.dense.bias,
        "add",
    )
    return self.LayerNorm(summed.view(shape))


def _is_exact_gelu(act) -> bool:
    import torch.nn.functional as F
    from transformers.activations import GELUActivation

    return type(act) is GELUActivation and getattr(act, "act", None) is F.gelu


def _is_intermediate(module) -> bool:
    return type(module).__name__.endswith("Intermediate") and _is_exact_gelu(
        getattr(module, "intermediate_act_fn", None)
    )


def _is_output(module) -> bool:
    import torch

    return (
        type(module).__name__.endswith("Output")
        and isinstance(getattr(module, "dense", None), torch.nn.Linear)
        and isinstance(getattr(module, "LayerNorm", None), torch.nn.LayerNorm)
        and set(dict(module.named_children())) <= {"dense", "LayerNorm", "dropout"}
    )


@functools.cache
def available() -> bool:
    """The op is private to PyTorch: check it runs and computes what it should before relying on it."""
    import torch
    import torch.nn.functional as F

    op = _op()
    if op is None:
        return False
    try:
        x, w, b, r = (torch.randn(*s).bfloat16() for s in ((4, 8), (16, 8), (16,), (4, 16)))
        gelu = op(x, w, b, "gelu", [], "none").float()
        added = op.binary(x, r, w, b, "add").float()
    except (RuntimeError, TypeError):
        return False
    linear = F.linear(x.float(), w.float(), b.float())
    return torch.allclose(gelu, F.gelu(linear), atol=0.05, rtol=0.02) and torch.allclose(
        added, linear + r.float(), atol=0.05, rtol=0.02
    )


def apply(model) -> bool:
    """Fuse a bf16 CPU BERT-family model's GELU and residual adds into its matmuls; True when any block
    was, False (model untouched) for other models, dtypes, devices, training mode or an untested
    transformers."""
    import torch

    if (
        untested_transformers()
        or model.training
        or model.device.type != "cpu"
        or model.dtype != torch.bfloat16
        or getattr(model.config, "model_type", None) not in MODEL_TYPES
        or not available()
    ):
        return False
    done = 0
    for module in model.modules():
        if getattr(getattr(module, "dense", None), "weight", torch.empty(0)).dtype != torch.bfloat16:
            continue  # a block kept in float32 stays as it is (the op wants one dtype)
        if _is_intermediate(module):
            module.forward = types.MethodType(_intermediate_forward, module)
        elif _is_output(module):
            module.forward = types.MethodType(_output_forward, module)
        else:
            continue
        done += 1
    return done > 0


def fused(module) -> bool:
    """Whether this block runs a fused forward."""
    bound = vars(module).get("forward")
    return getattr(bound, "__func__", None) in (_intermediate_forward, _output_forward)


def remove(model) -> None:
    """Give the fused blocks their own forward back."""
    for module in model.modules():
        if fused(module):
            del module.forward
