"""Fine-tuning depth models (GLPN, DPT, any AutoModelForDepthEstimation) on images with depth files.

Training images get a random horizontal flip (the depth map flips with them). The loss is GLPN's
scale-invariant log loss over the valid pixels only (depth > 0; batch padding counts as invalid),
computed here so that every depth head trains the same way (DPT's own forward has no loss).
"""

from __future__ import annotations

from functools import partial

from tasktool.tasks.pixel_maps import check_pairs
from tasktool.tasks.vision_training import ImageTaskTrainer, PairDataset, flip, pad_images, pad_maps

MIN_DEPTH = 1e-3  # predictions are clamped here before the log


def silog_loss(predicted, labels, lambd: float = 0.5):
    """sqrt(mean(d^2) - lambd * mean(d)^2), d = log(prediction) - log(truth), over pixels with truth > 0;
    the prediction is resized (bilinear) to the labels' size first."""
    import torch

    if predicted.dim() == 4:
        predicted = predicted[:, 0]
    if predicted.shape[-2:] != labels.shape[-2:]:
        predicted = torch.nn.functional.interpolate(
            predicted[:, None], size=labels.shape[-2:], mode="bilinear", align_corners=False
        )[:, 0]
    valid = labels > 0
    if not valid.any():
        return predicted.sum() * 0.0
    diff = torch.log(predicted[valid].clamp_min(MIN_DEPTH)) - torch.log(labels[valid])
    return torch.sqrt(((diff**2).mean() - lambd * diff.mean() ** 2).clamp_min(1e-8))


class DepthCollator:
    def __call__(self, items: list[dict]) -> dict:
        pixels, mask = pad_images([it["pixel_values"] for it in items])
        return {"pixel_values": pixels, "labels": pad_maps([it["labels"] for it in items], 0.0)}


def _flip_map(depth, width):
    return depth[:, ::-1].copy()


class Trainer(ImageTaskTrainer):
    def features(self, examples, processor, train):
        kept = check_pairs(
            examples,
            self.reader.check,
            strict=self.strict,
            split="training" if train else "evaluation",
            role="depth file",
        )
        examples[:] = kept  # the run's counts and its evaluation see only the readable examples
        return PairDataset(
            kept,
            self.load,
            partial(encode, processor),
            augment=partial(flip, flip_target=_flip_map) if train and self.use_augment else None,
            seed=int(self.recipe.get("seed") or 42),
        )

    def load(self, example):
        from tasktool.io.images import load_image

        return load_image(example["path"]), self.reader.depth(example)

    def collator(self, processor):
        return DepthCollator()

    def trainer_class(self):
        from transformers import Trainer as HFTrainer

        class DepthTrainer(HFTrainer):
            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                labels = inputs["labels"]
                outputs = model(pixel_values=inputs["pixel_values"])
                loss = silog_loss(outputs.predicted_depth, labels)
                return (loss, outputs) if return_outputs else loss

        return DepthTrainer


def encode(processor, image, depth) -> dict:
    """The processor's pixels; the depth map resized (nearest, so 0 stays invalid) to their size."""
    import torch

    pixels = processor(images=image, return_tensors="pt")["pixel_values"][0]
    target = torch.from_numpy(depth)[None, None]
    if tuple(target.shape[-2:]) != tuple(pixels.shape[-2:]):
        target = torch.nn.functional.interpolate(target, size=tuple(pixels.shape[-2:]), mode="nearest")
    return {"pixel_values": pixels, "labels": target[0, 0]}
