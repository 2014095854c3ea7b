"""Sentence classification reads one position of the last layer: compute only that one.

BERT-style classifiers (BERT, RoBERTa, XLM-R, ELECTRA, CamemBERT) score a sentence from the first
token's final hidden state. The last encoder layer still needs keys and values from every token, but
its query, attention output, feed-forward and layer norms are needed at position 0 only. For a 6-layer
MiniLM that removes 14% of the matrix arithmetic per token, with the same logits (tested to 1e-5).
"""

from __future__ import annotations

# classifiers whose head reads hidden_states[:, 0] (pooler or classification head) and nothing else
FIRST_TOKEN_HEADS = {
    "BertForSequenceClassification",
    "RobertaForSequenceClassification",
    "XLMRobertaForSequenceClassification",
    "ElectraForSequenceClassification",
    "CamembertForSequenceClassification",
}


def _module_class():
    import torch

    class FirstTokenLayer(torch.nn.Module):
        """A BERT layer that returns the first position only: queries from it, keys/values from all."""

        def __init__(self, layer):
            super().__init__()
            self.layer = layer

        def forward(self, hidden_states, attention_mask=None, *args, **kwargs):
            import torch.nn.functional as F

            attn = self.layer.attention.self
            batch, length, _ = hidden_states.shape
            heads, size = attn.num_attention_heads, attn.attention_head_size
            first = hidden_states[:, :1]
            query = attn.query(first).view(batch, 1, heads, size).transpose(1, 2)
            key = attn.key(hidden_states).view(batch, length, heads, size).transpose(1, 2)
            value = attn.value(hidden_states).view(batch, length, heads, size).transpose(1, 2)
            mask = attention_mask
            if mask is not None and mask.dim() == 4:
                mask = mask[:, :, :1, :]  # the first query's row
            context = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=attn.scaling)
            context = context.transpose(1, 2).reshape(batch, 1, heads * size)
            attended = self.layer.attention.output(context, first)
            return self.layer.output(self.layer.intermediate(attended), attended)

    return FirstTokenLayer


def _is_bert_layer(layer) -> bool:
    attn = getattr(getattr(layer, "attention", None), "self", None)
    return (
        all(hasattr(attn, name) for name in ("query", "key", "value", "num_attention_heads", "scaling"))
        and hasattr(attn, "attention_head_size")
        and hasattr(layer.attention, "output")
        and hasattr(layer, "intermediate")
        and hasattr(layer, "output")
        and not getattr(layer, "is_decoder", False)
        and not getattr(layer, "add_cross_attention", False)
    )


def apply(model) -> bool:
    """Inference only: swap the last layer of a known first-token classifier. True when swapped."""
    if type(model).__name__ not in FIRST_TOKEN_HEADS or model.training:
        return False
    encoder = getattr(getattr(model, "base_model", None), "encoder", None)
    layers = getattr(encoder, "layer", None)
    if layers is None or not len(layers) or not _is_bert_layer(layers[-1]):
        return False
    if getattr(model.config, "_attn_implementation", "sdpa") not in ("sdpa", "eager"):
        return False  # flash/flex attention take masks of their own form
    layers[-1] = _module_class()(layers[-1])
    return True
