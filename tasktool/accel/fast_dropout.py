"""Dropout that does not dominate CPU fine-tuning.

On CPU, torch draws a dropout mask one Mersenne-Twister number per element (`bernoulli_`), and
PyTorch's CPU SDPA kernels have no dropout, so training attention falls back to the slow math path;
dropout then takes a large share of every training step. Here a mask costs one 64-bit draw per four
elements (16 random bits each, so p is exact to 1/65536), and attention with dropout is two matmuls
and a softmax. Same distribution, same seed -> same run. Masks are applied by multiplying with a float
0/1 tensor: CPU kernels that read bool masks (masked_fill, where) are slower than the multiply, forward
and backward alike. GPUs keep their own fused kernels. (Figures: benchmarks/README.md.)
"""

from __future__ import annotations

import threading

from tasktool.accel.layers import untested_transformers

NAME = "tasktool_cpu_dropout"
STATE = "_tasktool_fast_dropout"  # what `apply` changed, kept on the model for `remove`
_local = threading.local()  # a thread's own generator, else torch's default (see own_generator)


class own_generator:
    """Masks drawn in this thread come from `generator`: micro-batches run on two threads at once
    would otherwise race for torch's one default generator, and the same seed would not give the same run.

    Thread-local, because the draws happen deep inside the model's forward (dropout modules, attention),
    on whichever thread runs the part, with no argument to carry a generator there."""

    def __init__(self, generator):
        self.generator = generator

    def __enter__(self):
        _local.generator = self.generator

    def __exit__(self, *exc):
        _local.generator = None
        return False


def _lanes(shape, device=None):
    """Uniform int16 lanes of the given shape, four per 64-bit draw."""
    import torch

    n = 1
    for size in shape:
        n *= size
    words = torch.randint(
        -(2**63),
        2**63 - 1,
        ((n + 3) // 4,),
        dtype=torch.int64,
        device=device,
        generator=getattr(_local, "generator", None),
    )
    return words.view(torch.int16)[:n].view(shape)


def _threshold(p: float) -> int:
    return -32768 + round(p * 65536)


def keep_mask(shape, p: float, dtype, device=None):
    """1 where kept, 0 where dropped (probability p, rounded to 1/65536), in the activations' dtype.
    Multiplying by it is a vectorised op; CPU kernels that read a bool mask (masked_fill, where) are
    slower than the multiply, forward and backward alike."""
    import torch

    # written straight into a float tensor: no bool mask in between
    return torch.ge(_lanes(shape, device), _threshold(p), out=torch.empty(shape, dtype=dtype, device=device))


def keep_scale(p: float) -> float:
    """What kept elements are multiplied by, so the expected value is unchanged."""
    return 1.0 / (1.0 - p)


def drop(x, p: float):
    # the mask carries 1/(1-p): one multiply forward, one backward (autograd keeps only the mask)
    return x * keep_mask(x.shape, p, x.dtype, x.device).mul_(keep_scale(p))


def _module_class():
    import torch

    class CpuDropout(torch.nn.Dropout):
        """nn.Dropout with the cheaper mask (a subclass, so code that looks for nn.Dropout still finds it)."""

        def forward(self, x):
            if not self.training or self.p == 0:
                return x
            if self.p >= 1:
                return x * 0
            return drop(x, self.p)

    return CpuDropout


def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """Attention for transformers' AttentionInterface: ours while training with dropout, else SDPA's."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    special = any(kwargs.get(k) is not None for k in ("softcap", "sliding_window", "position_bias", "s_aux"))
    q_len, k_len = query.shape[2], key.shape[2]
    causal = kwargs.get("is_causal")
    causal = getattr(module, "is_causal", False) if causal is None else causal
    needs_causal = attention_mask is None and causal and q_len > 1
    if (
        not (module.training and dropout > 0)
        or special
        or key.shape[1] != query.shape[1]  # grouped-query attention
        or (needs_causal and q_len != k_len)
    ):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    # the scale and the dropout's 1/(1-p) go on the small tensors (query, output), not on the L x L weights
    weights = torch.matmul(query * scaling, key.transpose(2, 3))
    if needs_causal:
        attention_mask = torch.ones(q_len, k_len, dtype=torch.bool, device=query.device).tril()
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            # an additive bias the size of the mask (heads broadcast), not a masked_fill over every head
            bias = torch.zeros(attention_mask.shape, dtype=weights.dtype, device=weights.device)
            attention_mask = bias.masked_fill_(~attention_mask, torch.finfo(weights.dtype).min)
        weights = weights + attention_mask
    if weights.dtype in (torch.bfloat16, torch.float16) and weights.device.type == "cpu":
        # CPU softmax kernels accumulate half types in float32 already: no float32 copy of the L x L weights
        weights = torch.softmax(weights, dim=-1).to(value.dtype)
    else:
        weights = torch.softmax(weights, dim=-1, dtype=torch.float32).to(value.dtype)
    weights = weights * keep_mask(weights.shape, dropout, weights.dtype, weights.device)
    out = torch.matmul(weights, value) * keep_scale(dropout)
    return out.transpose(1, 2).contiguous(), None


def apply(model) -> bool:
    """Swap the model's dropouts (and its SDPA attention, while training) for the cheap ones; True when
    anything changed, False (model untouched) where there is nothing to swap or transformers is untested.
    `remove` puts the attention implementation back (dropouts carry no weights)."""
    import torch
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if untested_transformers():
        return False
    cls = _module_class()
    swapped = 0
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Dropout and child.p > 0:
                setattr(parent, name, cls(child.p, inplace=child.inplace))
                swapped += 1
    config = getattr(model, "config", None)
    before = getattr(config, "_attn_implementation", None)
    attention_swapped = False
    # a private transformers 5 method: without it (another version) only the dropout modules change
    can_set = getattr(model, "_can_set_attn_implementation", None)
    if before == "sdpa" and can_set is not None and can_set():
        AttentionInterface.register(NAME, attention)
        AttentionMaskInterface.register(NAME, sdpa_mask)  # masks exactly as SDPA gets them
        configs = _configs(model)  # each sub-model's own choice, to put back one by one if need be
        model.set_attn_implementation(NAME)
        attention_swapped = model.config._attn_implementation == NAME
    if not (swapped or attention_swapped):
        return False
    state = {"dropouts": swapped, "attention": attention_swapped, "before": before}
    state["configs"] = configs if attention_swapped else []
    setattr(model, STATE, state)
    return True


def _configs(model) -> list:
    seen, out = set(), []
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and id(config) not in seen and hasattr(config, "_attn_implementation"):
            seen.add(id(config))
            out.append((config, config._attn_implementation))
    return out


def state(model) -> dict | None:
    """What `apply` changed: {"dropouts": how many modules, "attention": bool, "before": implementation}."""
    return getattr(model, STATE, None)


def remove(model) -> None:
    """Put the attention implementation back before the model is saved (dropouts carry no weights)."""
    done = vars(model).pop(STATE, None)
    if done and done.get("attention"):
        try:
            model.set_attn_implementation(done["before"])
        except ValueError:  # a sub-model that has no SDPA (DETR's ResNet backbone): each config as it was
            for config, implementation in done.get("configs", []):
                config._attn_implementation = implementation
