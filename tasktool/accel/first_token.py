"""Sentence classification reads one position of the last layer: compute only that one.

BERT-style classifiers (BERT, RoBERTa, XLM-R, ELECTRA, CamemBERT) score a sentence from the first
token's final hidden state. The last encoder layer still needs keys and values from every token, but
its query, attention output, feed-forward and layer norms are needed at position 0 only: a share of the
matrix arithmetic per token goes, with the same logits (tested to 1e-5). (Figures: benchmarks/README.md.)
"""

from __future__ import annotations

import types

from tasktool.accel.layers import is_bert_layer, untested_transformers

# classifiers whose head reads hidden_states[:, 0] (pooler or classification head) and nothing else
FIRST_TOKEN_HEADS = {
    "BertForSequenceClassification",
    "RobertaForSequenceClassification",
    "XLMRobertaForSequenceClassification",
    "ElectraForSequenceClassification",
    "CamembertForSequenceClassification",
}


def _first_token_forward(self, hidden_states, attention_mask=None, *args, **kwargs):
    """BertLayer.forward for position 0 only: queries from it, keys and values from every token."""
    import torch.nn.functional as F

    attn = self.attention.self
    batch, length, _ = hidden_states.shape
    heads, size = attn.num_attention_heads, attn.attention_head_size
    first = hidden_states[:, :1]
    query = attn.query(first).view(batch, 1, heads, size).transpose(1, 2)
    key = attn.key(hidden_states).view(batch, length, heads, size).transpose(1, 2)
    value = attn.value(hidden_states).view(batch, length, heads, size).transpose(1, 2)
    mask = attention_mask
    if mask is not None and mask.dim() == 4:
        mask = mask[:, :, :1, :]  # the first query's row
    dropout = attn.dropout.p if self.training else 0.0
    interface = _attention_interface(attn) if dropout else None
    if interface is not None:  # training: the model's own attention (tasktool's CPU dropout path on CPU)
        context, _ = interface(attn, query, key, value, mask, dropout=dropout, scaling=attn.scaling)
    else:
        context = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, dropout_p=dropout, scale=attn.scaling
        ).transpose(1, 2)
    context = context.reshape(batch, 1, heads * size)
    attended = self.attention.output(context, first)
    return self.output(self.intermediate(attended), attended)


def _attention_interface(attn):
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    name = getattr(attn.config, "_attn_implementation", None)
    return ALL_ATTENTION_FUNCTIONS[name] if name in ALL_ATTENTION_FUNCTIONS else None


def applied_to(layer) -> bool:
    """Whether this layer runs the first-token forward (it then outputs [rows, 1, width])."""
    bound = vars(layer).get("forward")
    return getattr(bound, "__func__", None) is _first_token_forward


def apply(model, training: bool = False) -> bool:
    """Make the last layer of a known first-token classifier compute position 0 only; True when done.

    The layer keeps its modules and weights (only its forward changes), so state dicts, checkpoints and
    saved models are the same. Training (training=True) gets the same loss and gradients: nothing
    after the last layer reads the other positions. False (model untouched) for any other model, a
    model in training mode without training=True, or an untested transformers.
    """
    if type(model).__name__ not in FIRST_TOKEN_HEADS or (model.training and not training):
        return False
    if untested_transformers():
        return False
    encoder = getattr(getattr(model, "base_model", None), "encoder", None)
    layers = getattr(encoder, "layer", None)
    if layers is None or not len(layers) or not is_bert_layer(layers[-1]):
        return False
    if getattr(model.config, "_attn_implementation", "sdpa") not in ("sdpa", "eager", "tasktool_cpu_dropout"):
        return False  # flash/flex attention take masks of their own form
    layers[-1].forward = types.MethodType(_first_token_forward, layers[-1])
    return True


def remove(model) -> None:
    """Give the last layer its own forward back."""
    layers = getattr(getattr(getattr(model, "base_model", None), "encoder", None), "layer", None)
    if layers is not None and len(layers) and applied_to(layers[-1]):
        del layers[-1].forward
