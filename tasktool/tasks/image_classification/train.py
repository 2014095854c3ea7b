"""Fine-tuning image classifiers (ViT, ConvNeXT, ...): labelled images -> AutoModelForImageClassification.

Training images get a light random resized crop and flip; evaluation uses the processor alone, as
`tasktool infer` does.
"""

from __future__ import annotations

from tasktool.tasks.media_classes import MediaClassTrainer
from tasktool.training.media import ImageDataset, check_images


class ImageCollator:
    def __call__(self, items: list[dict]) -> dict:
        import torch

        return {
            "pixel_values": torch.stack([it["pixel_values"] for it in items]),
            "labels": torch.tensor([it["labels"] for it in items], dtype=torch.long),
        }


class Trainer(MediaClassTrainer):
    def load_processor(self, ref: str):
        from tasktool.tasks.vision import load_image_processor

        return load_image_processor(ref, revision=self.recipe.get("revision"))

    def features(self, examples, processor, train):
        kept = check_images(examples, strict=self.strict, split="training" if train else "evaluation")
        examples[:] = kept  # the run's counts and its evaluation see only the readable images
        label2id = {label: i for i, label in enumerate(self.labels or [])}
        use_augment = self.recipe.get("augment")
        return ImageDataset(
            kept,
            label2id,
            processor,
            train=train,
            use_augment=True if use_augment is None else bool(use_augment),
            seed=int(self.recipe.get("seed") or 42),
        )

    def collator(self, processor):
        return ImageCollator()
