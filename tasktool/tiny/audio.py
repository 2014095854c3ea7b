"""Tiny random audio models: Whisper, Wav2Vec2-CTC and a Wav2Vec2 audio classifier.

Everything is built in-process (no Hub): the Whisper tokenizer is a small byte-level BPE plus the
special and timestamp tokens Whisper's `generate` looks up, so language/task forcing and
`--return-timestamps` go through the real code paths.
"""

from __future__ import annotations

import json
from pathlib import Path

SAMPLING_RATE = 16000
CTC_CHARS = list("abcdefghijklmnopqrstuvwxyz'")
LANGUAGES = ("en", "de", "fr")


def _whisper_tokenizer(out: Path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AddedToken, WhisperTokenizer

    from tasktool.tiny.text import corpus

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(corpus(), trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    tok = WhisperTokenizer(vocab=state["vocab"], merges=merges)
    # The order matters: Whisper finds timestamps as "ids after the last special token".
    specials = [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *[f"<|{lang}|>" for lang in LANGUAGES],
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nocaptions|>",
        "<|notimestamps|>",
    ]
    tok.add_special_tokens(
        {"additional_special_tokens": [AddedToken(t, special=True, normalized=False) for t in specials[1:]]}
    )
    tok.add_tokens(
        [AddedToken(f"<|{i * 0.02:.2f}|>", lstrip=False, rstrip=False, normalized=False) for i in range(1501)]
    )
    tok.pad_token = "<|endoftext|>"
    return tok


def _whisper(out: Path) -> None:
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    tok = _whisper_tokenizer(out)
    ids = {
        t: tok.convert_tokens_to_ids(t)
        for t in [
            "<|endoftext|>",
            "<|startoftranscript|>",
            "<|translate|>",
            "<|transcribe|>",
            "<|startofprev|>",
            "<|notimestamps|>",
        ]
    }
    eot = ids["<|endoftext|>"]
    config = WhisperConfig(
        vocab_size=len(tok),
        num_mel_bins=80,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=1500,
        max_target_positions=128,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=ids["<|startoftranscript|>"],
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    with torch.no_grad():  # quieter timestamp tokens, so the random model also writes text
        model.model.decoder.embed_tokens.weight[ids["<|notimestamps|>"] + 1 :] *= 0.05
    # What WhisperForConditionalGeneration.generate reads to force language, task and timestamps.
    gen = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=eot,
        pad_token_id=eot,
        bos_token_id=eot,
        begin_suppress_tokens=[eot],
        suppress_tokens=[],
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids["<|startofprev|>"],
        is_multilingual=True,
        max_initial_timestamp_index=50,
        lang_to_id={f"<|{lang}|>": tok.convert_tokens_to_ids(f"<|{lang}|>") for lang in LANGUAGES},
        task_to_id={"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]},
    )
    model.generation_config = gen
    model.save_pretrained(out)
    gen.save_pretrained(out)
    processor = WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tok)
    processor.save_pretrained(out)


def _ctc_processor(out: Path, attention_mask: bool):
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    vocab.update({c: i + 5 for i, c in enumerate(CTC_CHARS)})
    (out / "vocab.json").write_text(json.dumps(vocab))
    tok = Wav2Vec2CTCTokenizer(
        str(out / "vocab.json"),
        word_delimiter_token="|",
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
    )
    fe = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SAMPLING_RATE,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=attention_mask,
    )
    return Wav2Vec2Processor(feature_extractor=fe, tokenizer=tok), len(vocab)


def _wav2vec2_config(vocab_size: int = 32, **kwargs):
    from transformers import Wav2Vec2Config

    # Three convolutions with a total stride of 320: the real models' 20 ms frame rate.
    return Wav2Vec2Config(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16, 16),
        conv_stride=(5, 8, 8),
        conv_kernel=(10, 8, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        classifier_proj_size=16,
        pad_token_id=0,
        ctc_loss_reduction="mean",
        **kwargs,
    )


def build(family: str, out: Path, model_class: str = "", labels: list[str] | None = None) -> None:
    """Whisper, Wav2Vec2-CTC or a Wav2Vec2 classifier (each family has one head: `model_class` is implied)."""
    import torch
    import transformers as tf

    tf.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    if family == "whisper":
        _whisper(out)
    elif family == "wav2vec2-ctc":
        processor, vocab_size = _ctc_processor(out, attention_mask=True)
        model = tf.Wav2Vec2ForCTC(_wav2vec2_config(vocab_size))
        model.save_pretrained(out)
        processor.save_pretrained(out)
    elif family == "wav2vec2":
        labels = list(labels or ["yes", "no", "up", "down"])
        config = _wav2vec2_config(
            id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)}
        )
        model = tf.Wav2Vec2ForSequenceClassification(config)
        model.save_pretrained(out)
        _ctc_processor(out, attention_mask=True)[0].feature_extractor.save_pretrained(out)
        (out / "vocab.json").unlink()
    else:
        raise ValueError(f"unknown audio family {family}")
