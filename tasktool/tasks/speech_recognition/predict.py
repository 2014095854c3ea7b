"""automatic-speech-recognition: Whisper (generate) or Wav2Vec2-style CTC (argmax), chunked for long audio.

Short clips are decoded in `prepare` and batched together. A recording longer than one chunk is
not decoded up front: `predict` streams it through overlapping windows (`--chunk-length`, with
1/6 of a chunk of context on each side), so memory stays bounded whatever its length, and the
pieces are stitched as the HF pipeline does (CTC: drop the context frames; Whisper: the
tokenizer's overlap merge, timestamps shifted by each chunk's start).
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from itertools import islice

import numpy as np

from tasktool.engine import Predictor
from tasktool.errors import ItemError, TaskToolError, nearest
from tasktool.io.audio import audio_info, is_url, iter_audio_blocks, iter_windows, load_audio, padding_groups


@dataclass
class Clip:
    source: str  # the path or URL as given
    path: str  # a local file (a temporary download for URLs)
    temporary: bool
    duration: float  # seconds, from the file's header
    samples: int  # at the model's sampling rate
    audio: np.ndarray | None = None  # decoded now when it fits one chunk; streamed in predict otherwise
    error: ItemError | None = None  # a stream that failed once (its temporary download is gone): fail again


def speech_kind(config) -> str:
    """'ctc' or 'seq2seq', from the architectures the config names (or its model type)."""
    from transformers.models.auto import modeling_auto as ma

    from tasktool.runtime import architectures_in as _served

    archs = list(getattr(config, "architectures", None) or [])
    if any(a in _served("MODEL_FOR_CTC_MAPPING_NAMES") for a in archs):
        return "ctc"
    if any(a in _served("MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES") for a in archs):
        return "seq2seq"
    if config.model_type in ma.MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES:
        return "seq2seq"
    return "ctc" if config.model_type in ma.MODEL_FOR_CTC_MAPPING_NAMES else "seq2seq"


class SpeechRecognition(Predictor):
    window = 32  # decoded short clips are held until their batch runs
    max_padding = None  # Whisper pads every clip to 30 s anyway; decode steps are the cost

    def __init__(self, spec, opts):
        from tasktool import runtime

        self.spec, self.opts = spec, opts
        config = runtime.load_config(opts.model, opts.revision, opts.trust_remote_code)
        runtime.check_compatible(spec, config, opts.model)  # before the processor: the clearer error
        self.kind = speech_kind(config)
        self.whisper = config.model_type == "whisper"
        try:
            self.processor = runtime.load_processor(
                opts.model, revision=opts.revision, trust_remote_code=opts.trust_remote_code
            )
        except TypeError as exc:  # e.g. a CTC tokenizer without its vocab.json
            raise TaskToolError(
                f"cannot load the speech processor of '{opts.model}': {exc}",
                "save the processor next to the model (processor.save_pretrained)",
            ) from exc
        self.feature_extractor = getattr(self.processor, "feature_extractor", None)
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        if self.feature_extractor is None or self.tokenizer is None:
            raise TaskToolError(
                f"model '{opts.model}' has no speech processor (feature extractor + tokenizer)",
                "save the processor next to the model (processor.save_pretrained)",
            )
        auto_class = "AutoModelForCTC" if self.kind == "ctc" else "AutoModelForSpeechSeq2Seq"
        self.model = runtime.load_for_inference(spec, opts, auto_class=auto_class)
        self.device = self.model.device
        self.dtype = next(self.model.parameters()).dtype
        if opts.compile:
            self.model = runtime.compile_model(self.model)
        self.sr = int(self.feature_extractor.sampling_rate)
        # Without an attention mask, padding changes group-normed models' outputs: batch equal lengths only.
        self.pad_ok = self.kind != "ctc" or bool(
            getattr(self.feature_extractor, "return_attention_mask", False)
        )
        self._setup_chunks(config)
        self.gen_kwargs = self._generation_kwargs(config) if self.kind == "seq2seq" else {}
        if self.kind == "ctc" and opts.language:
            from tasktool.console import warn

            warn(f"--language is for Whisper models: '{opts.model}' is a CTC model, it is ignored")

    def _setup_chunks(self, config) -> None:
        from tasktool.console import warn

        opts = self.opts
        if opts.chunk_length is not None and opts.chunk_length <= 0:
            raise TaskToolError("--chunk-length must be positive (seconds)")
        limit = None
        if self.kind == "seq2seq":
            limit = float(
                getattr(self.feature_extractor, "chunk_length", 30) or 30
            )  # Whisper hears 30 s at most
        seconds = opts.chunk_length or (limit if limit else 20.0)
        if limit and seconds > limit:
            warn(f"--chunk-length {seconds:g} is longer than the model's {limit:g} s window: using {limit:g}")
            seconds = limit
        align = int(getattr(config, "inputs_to_logits_ratio", 1)) if self.kind == "ctc" else 1
        self.align = max(align, 1)
        self.chunk = max(self.align, int(round(seconds * self.sr / self.align)) * self.align)
        if self.kind == "seq2seq" and not self.whisper:
            self.stride = 0  # plain seq2seq has no overlap merge: cut without context
        else:
            self.stride = int(round(seconds / 6 * self.sr / self.align)) * self.align
        if self.chunk <= 2 * self.stride:
            raise TaskToolError("--chunk-length is too short", "use a few seconds at least")
        self.chunk_seconds = self.chunk / self.sr

    def _generation_kwargs(self, config) -> dict:
        from tasktool.console import warn

        opts = self.opts
        longest = int(getattr(config, "max_target_positions", 448) or 448) - 5  # room for the decoder prompt
        kwargs = self.opts.generation_kwargs(longest)
        kwargs["max_new_tokens"] = min(kwargs["max_new_tokens"], longest)
        if not self.whisper:
            return kwargs
        gen = self.model.generation_config
        multilingual = bool(getattr(gen, "lang_to_id", None)) and bool(getattr(gen, "task_to_id", None))
        if opts.language:
            if not multilingual:
                warn(f"'{opts.model}' is an English-only model: --language {opts.language} is ignored")
            else:
                kwargs["language"] = self._language(gen.lang_to_id)
        if multilingual:
            kwargs["task"] = "transcribe"
        if opts.return_timestamps:
            kwargs["return_timestamps"] = True
        return kwargs

    def _language(self, lang_to_id: dict) -> str:
        from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

        given = self.opts.language.strip().lower()
        code = TO_LANGUAGE_CODE.get(given, given).strip("<|>")
        if f"<|{code}|>" in lang_to_id:
            return code
        known = [k.strip("<|>") for k in lang_to_id]
        guess = nearest(code, known)
        raise TaskToolError(
            f"--language '{self.opts.language}' is not one of the model's languages",
            f"did you mean '{guess[0]}'?" if guess else f"use one of: {', '.join(known[:20])}",
        )

    # -- engine hooks ---------------------------------------------------------------------------

    def prepare(self, payload) -> Clip:
        if not isinstance(payload, str) or not payload.strip():
            raise ItemError("empty audio path", "give a file path or URL")
        path, temporary = payload, False
        if is_url(payload):
            from tasktool.io.media import download_to_temp

            path, temporary = download_to_temp(payload), True
        try:
            frames, rate = audio_info(path)
            samples = math.ceil(frames * self.sr / rate)
            clip = Clip(payload, path, temporary, frames / rate, samples)
            if samples <= self.chunk:
                clip.audio = load_audio(path, self.sr)
                clip.samples = len(clip.audio)
                self._cleanup(clip)
            return clip
        except BaseException:
            if temporary:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            raise

    def length(self, prepared: Clip) -> int:
        return prepared.samples

    def predict(self, batch: list[Clip]) -> list[dict]:
        out: list[dict | None] = [None] * len(batch)
        short = [i for i, clip in enumerate(batch) if clip.audio is not None]
        if short:
            pieces = self._forward([batch[i].audio for i in short], [(0, 0)] * len(short))
            for i, piece in zip(short, pieces, strict=True):
                out[i] = self._finish(batch[i], [piece])
        for i, clip in enumerate(batch):
            if clip.audio is None:
                if clip.error:
                    raise clip.error
                try:
                    out[i] = self._finish(clip, self._long(clip))
                except ItemError as exc:
                    clip.error = exc
                    raise
                finally:
                    self._cleanup(clip)
        return out  # type: ignore[return-value]

    def display(self, record: dict) -> dict[str, str]:
        from tasktool.io.writers import short

        return {"text": short(record["text"]), "duration": f"{record['duration']:.1f}s"}

    # -- model passes ---------------------------------------------------------------------------

    def _cleanup(self, clip: Clip) -> None:
        if clip.temporary:
            with contextlib.suppress(OSError):
                os.unlink(clip.path)
            clip.temporary = False

    def _long(self, clip: Clip) -> list:
        """Stream a long file window by window; only one batch of windows is in memory at once."""
        blocks = iter_audio_blocks(clip.path, self.sr, block_seconds=min(self.chunk_seconds, 10.0))
        windows = iter_windows(blocks, self.chunk, self.stride, self.stride)
        pieces = []
        size = max(1, self.opts.batch_size)
        while group := list(islice(windows, size)):
            done = self._forward([w[0] for w in group], [(w[1], w[2]) for w in group])
            for piece, window in zip(done, group, strict=True):
                if isinstance(piece, dict):
                    piece["start"] = window[3] / self.sr  # where the window begins in the recording
            pieces += done
        return pieces

    def _forward(self, audios: list[np.ndarray], strides: list[tuple[int, int]]) -> list:
        pieces: list = [None] * len(audios)
        for group in padding_groups([len(a) for a in audios], self.pad_ok):
            run = self._ctc if self.kind == "ctc" else self._generate
            for i, piece in zip(
                group, run([audios[i] for i in group], [strides[i] for i in group]), strict=True
            ):
                pieces[i] = piece
        return pieces

    def _inputs(self, audios: list[np.ndarray], **kwargs) -> dict:
        import torch

        features = self.feature_extractor(audios, sampling_rate=self.sr, return_tensors="pt", **kwargs)
        out = {}
        for key, value in features.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device)
                if value.is_floating_point():
                    value = value.to(self.dtype)
                out[key] = value
        return out

    def _ctc(self, audios, strides) -> list[np.ndarray]:
        inputs = self._inputs(audios, padding=True, return_attention_mask=self.pad_ok)
        ids = self.model(**inputs).logits.argmax(dim=-1).cpu().numpy()
        model = getattr(self.model, "_orig_mod", self.model)
        pieces = []
        for row, audio, (left, right) in zip(ids, audios, strides, strict=True):
            frames = int(model._get_feat_extract_output_lengths(len(audio)))
            pieces.append(row[left // self.align : max(frames - right // self.align, 0)])
        return pieces

    def _generate(self, audios, strides) -> list[dict]:
        if self.whisper:
            inputs = self._inputs(audios, return_attention_mask=True)
        else:
            inputs = self._inputs(audios, padding=True, return_attention_mask=True)
        tokens = self.model.generate(**inputs, **self.gen_kwargs)
        if not hasattr(tokens, "shape"):
            tokens = tokens["sequences"]
        tokens = tokens.cpu()
        pieces = []
        for i, (audio, (left, right)) in enumerate(zip(audios, strides, strict=True)):
            piece = {"tokens": tokens[i : i + 1], "seconds": len(audio) / self.sr}
            if left or right:
                piece["stride"] = (len(audio) / self.sr, left / self.sr, right / self.sr)
            pieces.append(piece)
        return pieces

    # -- stitching ------------------------------------------------------------------------------

    def _finish(self, clip: Clip, pieces: list) -> dict:
        chunks = None
        if self.kind == "ctc":
            ids = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
            if self.opts.return_timestamps:
                decoded = self.tokenizer.decode(ids, output_word_offsets=True)
                text = decoded.text
                step = self.align / self.sr
                chunks = [
                    {
                        "timestamp": [round(w["start_offset"] * step, 2), round(w["end_offset"] * step, 2)],
                        "text": w["word"],
                    }
                    for w in decoded.word_offsets
                ]
            else:
                text = self.tokenizer.decode(ids)
        elif self.whisper and hasattr(self.tokenizer, "_decode_asr"):  # the HF pipeline's overlap merge
            precision = float(self.feature_extractor.chunk_length) / self.model.config.max_source_positions
            text, optional = self.tokenizer._decode_asr(
                pieces,
                return_timestamps=self.opts.return_timestamps,
                return_language=None,
                time_precision=precision,
            )
            if self.opts.return_timestamps:
                chunks = [_timestamped(c, clip.duration) for c in optional.get("chunks", [])]
        else:
            text = " ".join(
                t.strip()
                for p in pieces
                for t in self.tokenizer.batch_decode(p["tokens"], skip_special_tokens=True)
            )
            if self.opts.return_timestamps:
                chunks = [
                    {
                        "timestamp": [
                            round(p.get("start", 0.0), 2),
                            round(min(p.get("start", 0.0) + p["seconds"], clip.duration), 2),
                        ],
                        "text": self.tokenizer.batch_decode(p["tokens"], skip_special_tokens=True)[0].strip(),
                    }
                    for p in pieces
                ]
        record: dict = {"text": text.strip()}
        if chunks is not None:
            record["chunks"] = chunks
        record["duration"] = round(clip.duration, 3)
        return record


def _timestamped(chunk: dict, duration: float) -> dict:
    start, end = chunk["timestamp"]
    start = min(max(0.0, float(start or 0.0)), duration)
    end = duration if end is None else min(max(float(end), start), duration)  # the last one may be open
    return {"timestamp": [round(start, 2), round(end, 2)], "text": chunk["text"]}


Predictor = SpeechRecognition
