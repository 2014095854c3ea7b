"""Fine-tuning Mask2Former-style models (AutoModelForUniversalSegmentation) on images with masks.

Each training example becomes one binary mask per segment with its class: per class for semantic
masks, per (class, instance) for panoptic data (the processor's own conversion, from a segment map
and its segment -> class table). Classes come from the data (see data.py) and the model's class head
is resized for them. Training images get a random horizontal flip (the masks flip with them); batches
of images of different sizes are padded, with a pixel mask the model honours.
"""

from __future__ import annotations

from functools import partial

from tasktool.errors import ItemError, TaskToolError
from tasktool.tasks.pixel_maps import check_pairs
from tasktool.tasks.vision_training import ImageTaskTrainer, PairDataset, flip, pad_images, pad_maps


class SegmentationCollator:
    def __call__(self, items: list[dict]) -> dict:
        pixels, _ = pad_images([it["pixel_values"] for it in items])
        height, width = pixels.shape[-2:]
        return {
            "pixel_values": pixels,
            "pixel_mask": pad_maps([it["pixel_mask"] for it in items], 0),  # the processor's own, padded
            "mask_labels": [_pad_to(it["mask_labels"], height, width) for it in items],
            "class_labels": [it["class_labels"] for it in items],
        }


def _pad_to(masks, height: int, width: int):
    out = masks.new_zeros((masks.shape[0], height, width))
    out[:, : masks.shape[-2], : masks.shape[-1]] = masks
    return out


def _flip_segments(target, width):
    segments, mapping = target
    return segments[:, ::-1].copy(), mapping


class Trainer(ImageTaskTrainer):
    def label_set(self, examples):
        names = self.reader.class_names()
        if names:
            return names
        top = -1
        for ex in examples:  # no names given: the class ids found in the training masks
            try:
                ids = self.reader.mask(ex)
            except ItemError:  # unreadable: counted when the features are built
                continue
            found = ids[ids != self.reader.ignore_index]
            if found.size:
                top = max(top, int(found.max()))
        if top < 0:
            raise TaskToolError(
                "no mask has a labelled pixel", f"check the masks and ignore_index={self.reader.ignore_index}"
            )
        return [str(i) for i in range(top + 1)]

    def features(self, examples, processor, train):
        self.reader.num_labels = len(self.labels or [])
        kept = check_pairs(
            examples,
            self.reader.check,
            strict=self.strict,
            split="training" if train else "evaluation",
            role="mask",
        )
        examples[:] = kept  # the run's counts and its evaluation see only the readable examples
        return PairDataset(
            kept,
            self.load,
            partial(encode, processor),
            augment=partial(flip, flip_target=_flip_segments) if train and self.use_augment else None,
            seed=int(self.recipe.get("seed") or 42),
        )

    def load(self, example):
        from tasktool.io.images import load_image

        return load_image(example["path"]), self.reader.segments(example)

    def collator(self, processor):
        return SegmentationCollator()


def encode(processor, image, target) -> dict:
    """The processor's pixels and its binary masks + classes for one image (resized together)."""
    segments, mapping = target
    out = processor(
        images=image,
        segmentation_maps=segments,
        instance_id_to_semantic_id=mapping or None,
        ignore_index=0,
        return_tensors="pt",
    )
    return {
        "pixel_values": out["pixel_values"][0],
        "pixel_mask": out["pixel_mask"][0],
        "mask_labels": out["mask_labels"][0].float(),
        "class_labels": out["class_labels"][0].long(),
    }
