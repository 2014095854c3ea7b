"""audio-classification: the top-k labels of a clip (keyword spotting, sound events, spoken digits)."""

from __future__ import annotations

import numpy as np

from tasktool.engine import Predictor
from tasktool.errors import ItemError
from tasktool.io.audio import load_audio, padding_groups
from tasktool.tasks.recheck import Rechecks


class AudioClassification(Rechecks, Predictor):
    window = 64  # decoded clips are held until their batch runs

    def __init__(self, spec, opts):
        from transformers import AutoFeatureExtractor

        from tasktool import runtime

        self.spec, self.opts = spec, opts
        ref = runtime.check_model_ref(opts.model)
        runtime.check_compatible(spec, runtime.load_config(ref, opts.revision, opts.trust_remote_code), ref)
        runtime.check_processor_file(ref, "feature extractor")
        with runtime.hub_errors(ref, "feature extractor"):
            self.feature_extractor = AutoFeatureExtractor.from_pretrained(
                ref, revision=opts.revision, trust_remote_code=opts.trust_remote_code
            )
        self.model = runtime.load_for_inference(spec, opts)
        self.device = self.model.device
        self.dtype = self.model.dtype  # transformers models and ONNX Runtime ones (tasktool.backends) have it
        if opts.compile:
            self.model = runtime.compile_model(self.model)
        self.sr = int(self.feature_extractor.sampling_rate)
        # Without an attention mask, padding changes group-normed models' outputs: batch equal lengths only.
        self.pad_ok = bool(getattr(self.feature_extractor, "return_attention_mask", False))
        self.start_rechecks(self.model)

    def prepare(self, payload) -> np.ndarray:
        if not isinstance(payload, str) or not payload.strip():
            raise ItemError("empty audio path", "give a file path or URL")
        return load_audio(payload, self.sr)

    def length(self, prepared: np.ndarray) -> int:
        return len(prepared)

    def predict(self, batch: list[np.ndarray]) -> list[dict]:
        out: list[dict | None] = [None] * len(batch)
        for group in padding_groups([len(a) for a in batch], self.pad_ok):
            for i, record in zip(group, self._classify([batch[i] for i in group]), strict=True):
                out[i] = record
        return out  # type: ignore[return-value]

    def _classify(self, audios: list[np.ndarray]) -> list[dict]:
        import torch

        features = self.feature_extractor(
            audios,
            sampling_rate=self.sr,
            padding=True,
            return_tensors="pt",
            return_attention_mask=self.pad_ok,
        )
        inputs = {}
        for key, value in features.items():
            value = value.to(self.device)
            inputs[key] = value.to(self.dtype) if value.is_floating_point() else value
        probs = torch.softmax(self.model(**inputs).logits.float(), dim=-1)
        probs = self.rechecked_torch(probs, inputs, multi=False)
        k = min(self.opts.top_k or 5, probs.shape[-1])
        scores, ids = probs.topk(k, dim=-1)
        id2label = self.model.config.id2label or {}
        records = []
        for row_scores, row_ids in zip(scores.tolist(), ids.tolist(), strict=True):
            labels = [
                {"label": id2label.get(i, f"LABEL_{i}"), "score": s}
                for i, s in zip(row_ids, row_scores, strict=True)
            ]
            records.append({"label": labels[0]["label"], "score": labels[0]["score"], "labels": labels})
        return records

    def display(self, record: dict) -> dict[str, str]:
        return {"label": str(record["label"]), "score": f"{record['score']:.3f}"}


Predictor = AudioClassification
