"""What the speed patches recognise: the transformers releases they were tested on, and the encoder
layers whose forward they compute themselves.

A patch re-implements a forward, so it is only right where the module computes what that code assumes.
Looking for attribute names is not enough: ESM (rotary positions inside attention, pre-LayerNorm),
LayoutLMv3 (a relative position bias added inside attention), RoBERTa-PreLayerNorm, XLM-R-XL, X-MOD and
MobileBERT layers all have `attention.self.query/key/value`, and a packed forward would compute something
else for them. So a layer is recognised by the exact class of its attention and the exact set of its
sub-modules. (transformers 5 also dropped the BERT family's relative position embeddings: its
`position_embedding_type` is no longer read by any BERT-family module, even where a checkpoint's
config.json still carries it.)
"""

from __future__ import annotations

# [lowest, first untested) transformers release; pyproject.toml pins the same range
TESTED_TRANSFORMERS = ("5.25", "5.26")

# self-attention classes of post-LayerNorm BERT layers with absolute positions (plain scaled dot-product)
BERT_ATTENTION = {
    ("transformers.models.bert.modeling_bert", "BertSelfAttention"),  # BERT, MiniLM
    ("transformers.models.roberta.modeling_roberta", "RobertaSelfAttention"),
    ("transformers.models.xlm_roberta.modeling_xlm_roberta", "XLMRobertaSelfAttention"),
    ("transformers.models.electra.modeling_electra", "ElectraSelfAttention"),
    ("transformers.models.camembert.modeling_camembert", "CamembertSelfAttention"),
}
DISTIL_ATTENTION = {("transformers.models.distilbert.modeling_distilbert", "DistilBertSelfAttention")}
BLOCK_OUTPUT = {"dense", "LayerNorm", "dropout"}  # dense -> dropout -> LayerNorm(x + residual)


def tested_range() -> str:
    low, high = TESTED_TRANSFORMERS
    return f">={low},<{high}"


def untested_transformers() -> str | None:
    """Why the patches stay off with the installed transformers (None: a tested release).

    Read at every apply, not cached: the check is cheap and tests change the version string."""
    import transformers
    from packaging.version import InvalidVersion, Version

    found = getattr(transformers, "__version__", "unknown")
    low, high = (Version(v) for v in TESTED_TRANSFORMERS)
    try:
        version = Version(Version(found).base_version)  # 5.26.0.dev0 counts as 5.26
    except InvalidVersion:
        version = None
    if version is None or not low <= version < high:
        return f"transformers {found} is outside the tested range {tested_range()}"
    return None


def _kind(module) -> tuple[str, str]:
    return (type(module).__module__, type(module).__qualname__)


def _children(module) -> set[str]:
    named = getattr(module, "named_children", None)
    return {name for name, _ in named()} if named is not None else set()


def is_bert_layer(layer) -> bool:
    """A BERT-family encoder layer (BERT, MiniLM, RoBERTa, XLM-R, ELECTRA, CamemBERT) exactly as transformers
    builds it: self-attention of a known class with nothing but query/key/value/dropout, then the
    post-LayerNorm output blocks; no cross-attention, not a decoder."""
    attention = getattr(layer, "attention", None)
    attn = getattr(attention, "self", None)
    return (
        _kind(attn) in BERT_ATTENTION
        and _children(layer) == {"attention", "intermediate", "output"}
        and _children(attention) == {"self", "output"}
        and {"query", "key", "value"} <= _children(attn) <= {"query", "key", "value", "dropout"}
        and _children(attention.output) == BLOCK_OUTPUT
        and _children(layer.intermediate) == {"dense", "intermediate_act_fn"}
        and _children(layer.output) == BLOCK_OUTPUT
        and all(hasattr(attn, name) for name in ("num_attention_heads", "attention_head_size", "scaling"))
        and not getattr(layer, "is_decoder", False)
        and not getattr(attn, "is_causal", False)
    )


def is_distil_layer(layer) -> bool:
    """A DistilBERT block exactly as transformers builds it (its own attention class, post-LayerNorm)."""
    attn = getattr(layer, "attention", None)
    return (
        _kind(attn) in DISTIL_ATTENTION
        and _children(layer) == {"attention", "sa_layer_norm", "ffn", "output_layer_norm"}
        and {"q_lin", "k_lin", "v_lin", "out_lin"} <= _children(attn)
        and _children(attn) <= {"q_lin", "k_lin", "v_lin", "out_lin", "dropout"}
        and hasattr(getattr(layer, "ffn", None), "ff_chunk")
        and all(hasattr(attn, name) for name in ("n_heads", "attention_head_size", "scaling"))
    )
