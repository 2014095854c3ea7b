"""BERT-style encoder layers (and DistilBERT's) over the real tokens only, for CPU fine-tuning.

A random batch of mixed-length sentences is mostly padding, and length-sorted micro-batches only shed
part of it, each pass with a fixed cost of its own. Here the encoder takes the batch's real tokens as
one [tokens, width] matrix: the linear layers, layer norms, activations and dropouts see no padding at
all, and attention alone is computed on small padded groups of rows of similar length (the rows arrive
sorted). The values are those of the padded forward at every real position (nothing there reads a
padded one: the mask hides them), so the loss and gradients are the same (tested); only padded
positions of the output are zeros instead of values nothing reads. Used in training and its
evaluations, where the trainer says which positions are real (`rows_of`), for tasks whose loss reads
no padded position. Only layers `tasktool.accel.layers` recognises exactly get it: the code below
assumes BERT's post-LayerNorm blocks and plain dot-product attention with absolute positions.
(Figures: benchmarks/README.md.)
"""

from __future__ import annotations

import threading
import types

from tasktool.accel import first_token
from tasktool.accel.layers import is_bert_layer, is_distil_layer, untested_transformers

_local = threading.local()  # the 2-D attention mask of the batch this thread is computing (see rows_of)
GROUP_ROWS = 4  # rows per attention group: sorted rows pad little; fewer groups mean fewer ops


class rows_of:
    """Within this block, this thread's packed encoders take `mask` ([rows, positions], 1 = real) as
    the batch's real tokens; None leaves them on their own forward.

    Thread-local, because concurrent micro-batches run parts of one batch through the same encoder on
    several threads at once, each part with its own mask, and no argument of the model's forward
    carries a mask of that form down to the encoder (it gets the model's 4-D one, or None)."""

    def __init__(self, mask):
        self.mask = mask

    def __enter__(self):
        self.before = getattr(_local, "mask", None)
        _local.mask = self.mask
        return self

    def __exit__(self, *exc):
        _local.mask = self.before
        return False


def _encoder(model):
    """The model's stack of layers and their kind: 'bert' (BERT, RoBERTa, XLM-R, ELECTRA, CamemBERT,
    MiniLM: base_model.encoder) or 'distil' (DistilBERT: base_model.transformer); (None, None) else."""
    base = getattr(model, "base_model", None)
    for name, kind, check in (("encoder", "bert", is_bert_layer), ("transformer", "distil", is_distil_layer)):
        encoder = getattr(base, name, None)
        layers = getattr(encoder, "layer", None)
        if (
            layers is not None
            and len(layers)
            and {n for n, _ in encoder.named_children()} == {"layer"}  # no position bias of its own
            and all(check(layer) for layer in layers)
        ):
            return encoder, kind
    return None, None


def apply(model) -> bool:
    """Give a BERT-style encoder (BERT, RoBERTa, XLM-R, ELECTRA, CamemBERT, MiniLM, DistilBERT) the packed
    forward for training; True when done, False (model untouched) for any other model or an untested
    transformers. Weights and state dicts are untouched (only `forward` changes)."""
    if untested_transformers():
        return False
    encoder, kind = _encoder(model)
    if encoder is None:
        return False
    encoder.forward = types.MethodType(_forward, encoder)
    encoder._tasktool_packed_kind = kind
    return True


def remove(model) -> None:
    """Give the encoder its own forward back."""
    base = getattr(model, "base_model", None)
    for name in ("encoder", "transformer"):
        encoder = getattr(base, name, None)
        bound = vars(encoder).get("forward") if encoder is not None else None
        if getattr(bound, "__func__", None) is _forward:
            del encoder.forward


def _forward(self, hidden_states, attention_mask=None, *args, **kwargs):
    from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPastAndCrossAttentions

    mask = getattr(_local, "mask", None)
    layers = list(self.layer)
    distil = getattr(self, "_tasktool_packed_kind", "bert") == "distil"
    output = BaseModelOutput if distil else BaseModelOutputWithPastAndCrossAttentions
    last_first = first_token.applied_to(layers[-1])
    if (
        mask is None
        or args
        or getattr(self, "gradient_checkpointing", False)
        or any(kwargs.get(k) is not None for k in ("encoder_hidden_states", "cache", "past_key_values"))
        or mask.dim() != 2
        or tuple(mask.shape) != tuple(hidden_states.shape[:2])
        or not bool(mask.bool().any(dim=1).all())
        or (last_first and not bool(mask[:, 0].bool().all()))  # position 0 must be a real token
    ):
        return type(self).forward(self, hidden_states, attention_mask, *args, **kwargs)
    plan = _Plan(mask.bool())
    rows, length, width = hidden_states.shape
    x = hidden_states.reshape(rows * length, width).index_select(0, plan.tokens)
    for i, layer in enumerate(layers):
        if i == len(layers) - 1 and last_first:
            out = _layer(layer, x, plan, first=True)[:, None, :]  # [rows, 1, width], as first_token's
            return output(last_hidden_state=out)
        x = _distil_layer(layer, x, plan) if distil else _layer(layer, x, plan)
    out = x.new_zeros(rows * length, width).index_copy(0, plan.tokens, x).view(rows, length, width)
    return output(last_hidden_state=out)


class _Plan:
    """Where each row's real tokens sit in the packed matrix, and the attention groups over them."""

    def __init__(self, mask):
        import torch

        rows, length = mask.shape
        self.tokens = mask.reshape(-1).nonzero().squeeze(1)  # row by row, positions in order
        lengths = mask.sum(dim=1)
        starts = torch.cumsum(lengths, 0) - lengths
        self.firsts = starts  # position 0 of each row (checked real for first-token layers)
        self.groups = []
        counts = lengths.tolist()
        for lo in range(0, rows, GROUP_ROWS):
            hi = min(rows, lo + GROUP_ROWS)
            width = max(counts[lo:hi])
            offsets = torch.arange(width, device=mask.device)
            real = offsets[None, :] < lengths[lo:hi, None]  # [rows, width]
            index = torch.where(real, starts[lo:hi, None] + offsets[None, :], 0)
            bias = torch.zeros(hi - lo, 1, 1, width, device=mask.device)
            bias.masked_fill_(~real[:, None, None, :], torch.finfo(torch.float32).min)
            self.groups.append(
                (lo, hi, width, index.reshape(-1), bias, real.reshape(-1).nonzero().squeeze(1))
            )


def _layer(layer, x, plan, first: bool = False):
    """One encoder layer on packed tokens x [tokens, width]; first: outputs at position 0 of each row only."""
    attn = layer.attention.self
    queries_from = x.index_select(0, plan.firsts) if first else x
    context = _attend(attn, attn.query(queries_from), attn.key(x), attn.value(x), plan, first)
    attended = layer.attention.output(context, queries_from)
    return layer.output(layer.intermediate(attended), attended)


def _distil_layer(layer, x, plan):
    """One DistilBERT block on packed tokens (its feed-forward unchunked: chunking only saves memory)."""
    attn = layer.attention
    context = _attend(attn, attn.q_lin(x), attn.k_lin(x), attn.v_lin(x), plan, first=False)
    attended = layer.sa_layer_norm(attn.out_lin(context) + x)
    return layer.output_layer_norm(layer.ffn.ff_chunk(attended) + attended)


def _attend(attn, query, key, value, plan, first: bool):
    import torch

    heads = getattr(attn, "num_attention_heads", None) or attn.n_heads
    size = attn.attention_head_size
    scaling = getattr(attn, "scaling", size**-0.5)
    out = []
    for lo, hi, width, index, bias, real in plan.groups:
        rows = hi - lo
        k = key.index_select(0, index).view(rows, width, heads, size).transpose(1, 2)
        v = value.index_select(0, index).view(rows, width, heads, size).transpose(1, 2)
        if first:
            q = query[lo:hi].view(rows, 1, heads, size).transpose(1, 2)
        else:
            q = query.index_select(0, index).view(rows, width, heads, size).transpose(1, 2)
        weights = torch.matmul(q * scaling, k.transpose(2, 3)) + bias
        weights = torch.softmax(weights, dim=-1, dtype=torch.float32).to(v.dtype)
        weights = attn.dropout(weights)
        context = torch.matmul(weights, v).transpose(1, 2).reshape(-1, heads * size)
        out.append(context if first else context.index_select(0, real))
    return torch.cat(out)
