"""Fine-tuning audio classifiers (Wav2Vec2, HuBERT, AST ...): labelled clips -> AutoModelForAudioClassification."""

from __future__ import annotations

from tasktool.training.media_classification import MediaClassificationTrainer
from tasktool.training.media_data import (
    AUDIO,
    ListDataset,
    decode_audio,
    pad_kwargs,
    spec_augment_min_samples,
)


def load_feature_extractor(ref: str, revision: str | None = None):
    """The checkpoint's feature extractor; a plain 16 kHz Wav2Vec2 one when it has none."""
    from transformers import AutoFeatureExtractor, Wav2Vec2FeatureExtractor

    from tasktool import runtime
    from tasktool.errors import TaskToolError

    try:
        with runtime.hub_errors(ref, "feature extractor"):
            return AutoFeatureExtractor.from_pretrained(ref, revision=revision)
    except TaskToolError as exc:
        if "unreachable" in exc.message or "no feature extractor" in exc.message:
            raise
        from tasktool.console import warn

        warn(
            f"'{ref}' has no feature extractor: using a 16 kHz Wav2Vec2 one (normalised, with attention mask)"
        )
        return Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True, return_attention_mask=True)


class AudioCollator:
    """Raw clips -> the feature extractor's padded inputs (exactly as the infer predictor builds them)."""

    def __init__(self, feature_extractor, min_samples: int = 0):
        self.fe = feature_extractor
        self.pad_ok = bool(getattr(feature_extractor, "return_attention_mask", False))
        self.min_samples = min_samples

    def __call__(self, items: list[dict]) -> dict:
        import torch

        audios = [it["audio"] for it in items]
        batch = self.fe(
            audios,
            sampling_rate=self.fe.sampling_rate,
            return_attention_mask=self.pad_ok,
            return_tensors="pt",
            **pad_kwargs([len(a) for a in audios], self.min_samples),
        )
        out = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
        out["labels"] = torch.tensor([it["labels"] for it in items], dtype=torch.long)
        return out


class AudioClassificationTrainer(MediaClassificationTrainer):
    kind = AUDIO

    def _tokenizer(self, ref: str):
        return load_feature_extractor(ref, self.recipe.get("revision"))

    def load_model(self, ref: str):
        model = super().load_model(ref)
        if self.recipe.get("freeze_feature_encoder") and hasattr(model, "freeze_feature_encoder"):
            model.freeze_feature_encoder()
        self.min_samples = spec_augment_min_samples(model.config)
        return model

    def features(self, examples, feature_extractor, train):
        kept, audios = decode_audio(
            examples,
            int(feature_extractor.sampling_rate),
            self.recipe.get("max_audio_seconds"),
            truncate=True,
            strict=self.strict,
            split="training" if train else "evaluation",
        )
        examples[:] = kept  # the run's counts and its evaluation see only the readable clips
        label2id = {label: i for i, label in enumerate(self.labels or [])}
        return ListDataset(
            [{"audio": a, "labels": label2id[ex["label"]]} for ex, a in zip(kept, audios, strict=True)]
        )

    def collator(self, feature_extractor):
        return AudioCollator(feature_extractor, getattr(self, "min_samples", 0))
