"""Fine-tuning speech recognition: Whisper (seq2seq) or Wav2Vec2-style CTC.

Whisper learns its transcripts behind the decoder prompt <|startoftranscript|><|lang|><|transcribe|>
<|notimestamps|>; the language and task go into the saved generation config, so `tasktool infer`
decodes with the same prompt. A CTC base without a tokenizer (a pretrained-only checkpoint such as
facebook/wav2vec2-base) gets a character vocabulary built from the training transcripts, saved with
the model.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from tasktool.errors import TaskToolError
from tasktool.tasks.speech_recognition.evaluate import normalize_text
from tasktool.training.media import ListDataset, decode_audio, pad_kwargs, spec_augment_min_samples
from tasktool.training.trainer import TaskTrainer

WHISPER_SECONDS = 30.0  # Whisper hears 30 s at most: longer training clips would lose their end
SPECIAL = {"pad": "<pad>", "bos": "<s>", "eos": "</s>", "unk": "<unk>", "word": "|"}


def build_ctc_vocab(texts: list[str]) -> dict[str, int]:
    """Specials, the word delimiter '|', then every character of the normalised transcripts, sorted."""
    chars = sorted({ch for text in texts for ch in normalize_text(text) if ch != " "})
    vocab = {SPECIAL["pad"]: 0, SPECIAL["bos"]: 1, SPECIAL["eos"]: 2, SPECIAL["unk"]: 3, SPECIAL["word"]: 4}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
    return vocab


class SpeechCollator:
    """Clips -> padded features; transcripts -> label ids padded with -100 (ignored by the loss)."""

    def __init__(
        self, feature_extractor, whisper: bool, decoder_start: int | None = None, min_samples: int = 0
    ):
        self.fe, self.whisper, self.decoder_start = feature_extractor, whisper, decoder_start
        self.pad_ok = bool(getattr(feature_extractor, "return_attention_mask", False))
        self.min_samples = min_samples

    def __call__(self, items: list[dict]) -> dict:
        import torch

        audios = [it["audio"] for it in items]
        if self.whisper:
            feats = self.fe(audios, sampling_rate=self.fe.sampling_rate, return_tensors="pt")
            out = {"input_features": feats["input_features"]}
        else:
            feats = self.fe(
                audios,
                sampling_rate=self.fe.sampling_rate,
                return_attention_mask=self.pad_ok,
                return_tensors="pt",
                **pad_kwargs([len(a) for a in audios], self.min_samples),
            )
            out = {k: v for k, v in feats.items() if isinstance(v, torch.Tensor)}
        labels = [list(it["labels"]) for it in items]
        if (
            self.whisper
            and self.decoder_start is not None
            and all(lb and lb[0] == self.decoder_start for lb in labels)
        ):
            labels = [
                lb[1:] for lb in labels
            ]  # the model puts the start token back when it shifts labels right
        longest = max(len(lb) for lb in labels)
        out["labels"] = torch.tensor([lb + [-100] * (longest - len(lb)) for lb in labels], dtype=torch.long)
        return out


class Trainer(TaskTrainer):
    eval_file_name = "eval.jsonl"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = "seq2seq"
        self.whisper = False
        self.built_vocab = False
        self.train_texts: list[str] = []
        self.config = None
        self.processor = None
        self.language: str | None = None
        self.prompt: list[int] = []

    @property
    def strict(self) -> bool:
        return bool(self.recipe.get("strict"))

    # ------------------------------------------------------------------ data
    def load_examples(self, data, eval_data):
        train, evals, held_out = super().load_examples(data, eval_data)
        self.train_texts = [ex["text"] for ex in train]
        return train, evals, held_out

    # ------------------------------------------------------------------ processor and model
    def load_processor(self, ref: str):
        """The processor (feature extractor + tokenizer) the model trains and is saved with."""
        from tasktool import runtime
        from tasktool.tasks.speech_recognition.predict import speech_kind

        revision = self.recipe.get("revision")
        config = runtime.load_config(ref, revision)
        self.config = config
        self.kind = speech_kind(config)
        self.whisper = config.model_type == "whisper"
        try:
            processor = runtime.load_processor(ref, revision=revision)
        except TaskToolError as exc:
            if "unreachable" in exc.message or self.kind != "ctc":
                raise
            processor = None
        except (TypeError, AttributeError):  # a CTC checkpoint without vocab.json fails inside the tokenizer
            if self.kind != "ctc":
                raise
            processor = None
        if self.kind == "ctc":
            self.processor = self._ctc_processor(ref, processor)
            return self.processor
        self.processor = processor
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is None or getattr(processor, "feature_extractor", None) is None:
            raise TaskToolError(
                f"'{ref}' has no speech processor (feature extractor + tokenizer)",
                "fine-tune from a checkpoint that ships one, e.g. openai/whisper-tiny",
            )
        if self.whisper:
            self.language, self.prompt = self._whisper_prompt(ref, tokenizer)
        return processor

    def _whisper_prompt(self, ref: str, tokenizer) -> tuple[str | None, list[int]]:
        """The decoder prompt generate() starts from, with the ids the generation config names:
        <|startoftranscript|> [<|lang|> <|transcribe|>] <|notimestamps|> (English-only models skip the middle)."""
        from transformers import GenerationConfig
        from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

        from tasktool import runtime

        try:
            gen = GenerationConfig.from_pretrained(ref, revision=self.recipe.get("revision"))
        except Exception:  # noqa: BLE001 - no generation config: an English-only prompt
            gen = None
        runtime.quiet_transformers()
        sot = getattr(gen, "decoder_start_token_id", None) or tokenizer.convert_tokens_to_ids(
            "<|startoftranscript|>"
        )
        no_ts = getattr(gen, "no_timestamps_token_id", None) or tokenizer.convert_tokens_to_ids(
            "<|notimestamps|>"
        )
        if gen is None or not getattr(gen, "lang_to_id", None) or not getattr(gen, "task_to_id", None):
            return None, [sot, no_ts]
        given = (self.recipe.get("language") or "en").strip().lower()
        code = TO_LANGUAGE_CODE.get(given, given).strip("<|>")
        if f"<|{code}|>" not in gen.lang_to_id:
            known = ", ".join(k.strip("<|>") for k in list(gen.lang_to_id)[:20])
            raise TaskToolError(
                f"language '{given}' is not one of the languages of '{ref}'", f"use one of: {known}"
            )
        return code, [sot, gen.lang_to_id[f"<|{code}|>"], gen.task_to_id["transcribe"], no_ts]

    def _ctc_processor(self, ref: str, loaded):
        from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2Processor

        from tasktool.training.media import load_feature_extractor

        tokenizer = getattr(loaded, "tokenizer", None)
        fe = getattr(loaded, "feature_extractor", None)
        if fe is None and loaded is not None and hasattr(loaded, "sampling_rate"):
            fe = loaded
        if fe is None:
            fe = load_feature_extractor(ref, self.recipe.get("revision"))
        if tokenizer is None:
            vocab = build_ctc_vocab(self.train_texts)
            folder = Path(tempfile.mkdtemp(prefix="tasktool-vocab-"))
            (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
            tokenizer = Wav2Vec2CTCTokenizer(
                str(folder / "vocab.json"),
                unk_token=SPECIAL["unk"],
                pad_token=SPECIAL["pad"],
                bos_token=SPECIAL["bos"],
                eos_token=SPECIAL["eos"],
                word_delimiter_token=SPECIAL["word"],
            )
            self.built_vocab = True
            self._say(
                f"      built a character vocabulary of {len(vocab)} symbols from the training transcripts"
            )
        return Wav2Vec2Processor(feature_extractor=fe, tokenizer=tokenizer)

    def model_kwargs(self) -> dict:
        return {}

    def load_model(self, ref: str):
        from tasktool import runtime

        kwargs = {}
        if self.kind == "ctc":
            tok = self.processor.tokenizer
            kwargs = {
                "vocab_size": len(tok),
                "pad_token_id": tok.pad_token_id,
                "ctc_loss_reduction": "mean",
                "ctc_zero_infinity": True,
                "ignore_mismatched_sizes": True,
            }
        auto = "AutoModelForCTC" if self.kind == "ctc" else "AutoModelForSpeechSeq2Seq"
        model = runtime.load_model(
            self.spec,
            ref,
            revision=self.recipe.get("revision"),
            device="cpu",
            dtype="float32",
            for_training=True,
            auto_class=auto,
            **kwargs,
        )
        if (
            self.kind == "ctc"
            and self.recipe.get("freeze_feature_encoder")
            and hasattr(model, "freeze_feature_encoder")
        ):
            model.freeze_feature_encoder()
        self.min_samples = spec_augment_min_samples(model.config) if self.kind == "ctc" else 0
        if self.whisper:
            gen = model.generation_config
            if getattr(gen, "lang_to_id", None) and self.language:
                gen.language = self.language  # read by generate(): infer decodes behind the trained prompt
                gen.task = "transcribe"
            gen.forced_decoder_ids = None
            model.config.forced_decoder_ids = None
        return model

    # ------------------------------------------------------------------ features
    def _labels(self, text: str) -> list[int]:
        tok = self.processor.tokenizer
        if self.kind == "ctc":
            text = normalize_text(text)
            vocab = tok.get_vocab()
            letters = [c for c in vocab if len(c) == 1 and c.isalpha()]
            if letters and all(c.isupper() for c in letters):  # e.g. facebook/wav2vec2-base-960h
                text = text.upper()
            return tok(text).input_ids
        return self.prompt + tok(text, add_special_tokens=False).input_ids + [tok.eos_token_id]

    def features(self, examples, processor, train):
        from tasktool.console import warn

        self.processor = processor
        fe = processor.feature_extractor
        limit = self.recipe.get("max_audio_seconds") or None
        if self.whisper:
            limit = min(limit or WHISPER_SECONDS, WHISPER_SECONDS)
        split = "training" if train else "evaluation"
        kept, audios = decode_audio(
            examples,
            int(fe.sampling_rate),
            limit,
            truncate=False,
            strict=self.strict,
            split=split,
            drop_long=train,
        )
        examples[:] = kept  # the run's counts and its evaluation see only the readable clips
        longest = None
        if self.kind == "seq2seq":
            longest = int(getattr(self.config, "max_target_positions", 448) or 448)
        items, too_long, unknown = [], 0, 0
        unk = getattr(processor.tokenizer, "unk_token_id", None)
        for ex, audio in zip(kept, audios, strict=True):
            if limit and len(audio) > limit * fe.sampling_rate:
                continue  # evaluation keeps long clips for WER (infer chunks them) but not for the loss
            ids = self._labels(ex["text"])
            if longest and len(ids) > longest:
                too_long += 1
                continue
            if self.kind == "ctc" and unk is not None:
                unknown += sum(i == unk for i in ids)
            items.append({"audio": audio, "labels": ids})
        if too_long:
            warn(f"left out {too_long} {split} clip(s) whose transcription is longer than {longest} tokens")
        if unknown and train:
            warn(f"{unknown} transcript character(s) are not in the model's vocabulary (learnt as <unk>)")
        if train and not items:
            raise TaskToolError(
                "no training clip is left to learn from", "check max_audio_seconds and the data"
            )
        return ListDataset(items)

    def collator(self, processor):
        start = None
        if self.whisper:
            start = processor.tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
        return SpeechCollator(
            processor.feature_extractor, self.whisper, start, getattr(self, "min_samples", 0)
        )

    def training_arguments(self, ckpt_dir, log_dir, has_eval, **extra):
        args = super().training_arguments(ckpt_dir, log_dir, has_eval, **extra)
        args.remove_unused_columns = False  # the collator takes decoded audio, not model columns
        if getattr(args, "train_sampling_strategy", None) == "group_by_length":
            args.train_sampling_strategy = "random"
        return args
