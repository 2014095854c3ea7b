"""Fine-tuning audio classifiers (Wav2Vec2, HuBERT, AST ...): labelled clips -> AutoModelForAudioClassification."""

from __future__ import annotations

from tasktool.tasks.media_classes import MediaClassTrainer
from tasktool.training.media import (
    ListDataset,
    decode_audio,
    load_feature_extractor,
    pad_kwargs,
    spec_augment_min_samples,
)


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


class Trainer(MediaClassTrainer):
    def load_processor(self, ref: str):
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
            [
                {"audio": a, "labels": label2id.get(ex["label"], -100)}
                for ex, a in zip(kept, audios, strict=True)
            ]
        )

    def collator(self, feature_extractor):
        return AudioCollator(feature_extractor, getattr(self, "min_samples", 0))
