"""Tiny text models (BERT, GPT-2, Llama, BART, T5, Marian) with tokenizers trained in-process."""

from __future__ import annotations

import random
from pathlib import Path

WORDS = (
    "the a an of to in and is was for on with as by at from that this it be are were he she they we you "
    "i not or but his her their our your my one two three four five six seven eight nine ten new old good "
    "bad great small large big long short high low first last year day time people world city country "
    "house car book film movie story music game team player company market price government president "
    "school student teacher water food tree river mountain road night morning love hate happy sad best "
    "worst very really quite too much many more most less some any every each other another same "
    "paris london berlin john mary smith google apple monday july english french german summer winter "
    "run runs ran walk walked see saw make made take took give gave think thought know knew say said "
    "go went come came find found tell told work worked call called try tried ask asked need felt "
    "wonderful terrible boring exciting beautiful ugly amazing awful brilliant dull fantastic poor "
    "question answer context summary travel label token word sentence text number"
).split()


def corpus(n: int = 400, seed: int = 0) -> list[str]:
    """A small, varied English-like corpus: enough for tokenizers to cover every letter."""
    rng = random.Random(seed)
    lines = [" ".join(WORDS[i : i + 12]) for i in range(0, len(WORDS), 12)]
    lines.append("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"()-")
    for _ in range(n):
        words = rng.choices(WORDS, k=rng.randint(4, 16))
        lines.append(" ".join(words).capitalize() + rng.choice([".", "!", "?", ","]))
    return lines


def _wordpiece(vocab_size: int = 600):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(
        corpus(),
        trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False),
    )
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tok.decoder = decoders.WordPiece()
    return tok, dict(
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def byte_bpe(
    specials: list[str],
    template: tuple[str, str] | None,
    vocab_size: int = 600,
    texts: list[str] | None = None,
):
    """A byte-level BPE trained in-process on `texts` (default: the tiny corpus); `template` = (bos, eos)
    wraps every encoding, else GPT-2's byte-level post-processing."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts or corpus(), trainer)
    if template:
        bos, eos = template
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A {eos}" if bos else f"$A {eos}",
            pair=f"{bos} $A {eos} {eos} $B {eos}" if bos else f"$A {eos} $B {eos}",
            special_tokens=[(t, tok.token_to_id(t)) for t in (bos, eos) if t],
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=True)
    return tok


def _save_tokenizer(tok, out: Path, max_length: int, **special):
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_length, **special)
    fast.save_pretrained(out)
    return fast


def _encoder_decoder_sizes(max_length: int) -> dict:
    """The tiny sizes BART and Marian share (same config field names)."""
    return dict(
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=max_length,
    )


def _bert(max_length: int, out: Path, tf):
    tok, special = _wordpiece()
    fast = _save_tokenizer(tok, out, max_length, **special)
    return tf.BertConfig(
        vocab_size=len(fast),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_length,
        pad_token_id=fast.pad_token_id,
    )


def _gpt2(max_length: int, out: Path, tf):
    tok = byte_bpe(["<|endoftext|>"], None)
    eot = "<|endoftext|>"
    fast = _save_tokenizer(tok, out, max_length, bos_token=eot, eos_token=eot, pad_token=eot)
    eos = fast.eos_token_id
    return tf.GPT2Config(
        vocab_size=len(fast),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=max_length,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )


# A Zephyr-style chat template; {% generation %} marks what the assistant says (its end-of-turn token too),
# so apply_chat_template(return_assistant_tokens_mask=True) can tell the tokens a chat model learns.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|assistant|>\\n' }}{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}{{ '\\n' }}"
    "{%- else -%}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>\\n' }}{%- endif -%}"
)
CHAT_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"]


def _llama(max_length: int, out: Path, tf):
    """A Llama-style chat model: byte BPE with <s> / </s>, role tokens and a chat template (no pad token,
    like the real ones)."""
    from tokenizers import processors

    tok = byte_bpe(["<s>", "</s>", "<unk>", *CHAT_TOKENS], None)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    fast = _save_tokenizer(
        tok,
        out,
        max_length,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        additional_special_tokens=CHAT_TOKENS,
        chat_template=CHAT_TEMPLATE,
    )
    return tf.LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=max_length,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        tie_word_embeddings=False,
    )


def _bart(max_length: int, out: Path, tf):
    tok = byte_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"], ("<s>", "</s>"))
    fast = _save_tokenizer(
        tok,
        out,
        max_length,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )
    return tf.BartConfig(
        vocab_size=len(fast),
        **_encoder_decoder_sizes(max_length),
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        decoder_start_token_id=fast.eos_token_id,
        forced_bos_token_id=None,
        forced_eos_token_id=fast.eos_token_id,
    )


def _t5_tokenizer(max_length: int, out: Path):
    tok = byte_bpe(["<pad>", "</s>", "<unk>"], (None, "</s>"))
    return _save_tokenizer(tok, out, max_length, eos_token="</s>", pad_token="<pad>", unk_token="<unk>")


def _t5(max_length: int, out: Path, tf):
    fast = _t5_tokenizer(max_length, out)
    return tf.T5Config(
        vocab_size=len(fast),
        d_model=32,
        d_kv=16,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        pad_token_id=fast.pad_token_id,
        eos_token_id=fast.eos_token_id,
        decoder_start_token_id=fast.pad_token_id,
    )


def _marian(max_length: int, out: Path, tf):
    fast = _t5_tokenizer(max_length, out)
    return tf.MarianConfig(
        vocab_size=len(fast),
        **_encoder_decoder_sizes(max_length),
        pad_token_id=fast.pad_token_id,
        eos_token_id=fast.eos_token_id,
        decoder_start_token_id=fast.pad_token_id,
        forced_eos_token_id=fast.eos_token_id,
    )


CONFIGS = {"bert": _bert, "gpt2": _gpt2, "bart": _bart, "t5": _t5, "marian": _marian, "llama": _llama}


def build(
    family: str,
    out: Path,
    model_class: str,
    labels: list[str] | None = None,
    max_length: int = 128,
    init_std: float | None = None,
) -> None:
    """A tokenizer trained in-process and a random `model_class` of `family`, saved into `out`.

    init_std: a larger random-init scale (e.g. 0.2) makes outputs depend visibly on the input."""
    import torch
    import transformers as tf

    tf.utils.logging.disable_progress_bar()
    if family not in CONFIGS:
        raise ValueError(f"unknown text family {family}")
    config = CONFIGS[family](max_length, out, tf)
    if init_std is not None:
        for attr, value in (
            ("init_std", init_std),
            ("initializer_range", init_std),
            ("initializer_factor", init_std / 0.02),
        ):
            if hasattr(config, attr):
                setattr(config, attr, value)
    if labels:
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
    torch.manual_seed(0)
    model = getattr(tf, model_class).from_config(config)
    model.save_pretrained(out)
    if hasattr(model, "generation_config") and model.can_generate():
        model.generation_config.save_pretrained(out)
