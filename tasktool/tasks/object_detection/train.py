"""Fine-tuning object detectors (DETR and the Auto class's other detectors) on images with boxes.

Classes come from the data (COCO categories, else the classes of the training boxes, or
`label_names`) and the model's class head is resized for them. Training images get a random
horizontal flip and, for processors that resize by the shortest edge (DETR's), a random scale (60-100%
of that size), the boxes moving with the image; crowd boxes are left out. Each image is processed alone, its boxes normalised to its own size
(as DETR was trained), and a batch is padded to its largest image with a pixel mask the model honours.
"""

from __future__ import annotations

import random
from functools import partial

from tasktool.errors import TaskToolError
from tasktool.tasks.classes import label_key
from tasktool.tasks.vision_training import ImageTaskTrainer, PairDataset, pad_images, pad_maps

SCALES = (0.6, 1.0)  # random share of the processor's target size while training


class DetectionCollator:
    def __call__(self, items: list[dict]) -> dict:
        pixels, _ = pad_images([it["pixel_values"] for it in items])
        return {
            "pixel_values": pixels,
            "pixel_mask": pad_maps([it["pixel_mask"] for it in items], 0),
            "labels": [it["labels"] for it in items],
        }


class Trainer(ImageTaskTrainer):
    def label_set(self, examples):
        names = self.recipe.get("label_names")
        if getattr(self.reader, "categories", None):
            return list(self.reader.categories)
        found = sorted({o["label"] for ex in examples for o in ex["objects"]}, key=label_key)
        if names:
            found = [n for n in names if n in found] + [n for n in found if n not in names]
        if not found:
            raise TaskToolError("the training data has no boxes", "give at least one box with a class")
        return found

    def check_labels(self, examples, known, source_name):
        return check_classes(examples, known)

    def features(self, examples, processor, train):
        from tasktool.training.media import check_images

        kept = check_images(examples, strict=self.strict, split="training" if train else "evaluation")
        examples[:] = kept  # the run's counts and its evaluation see only the readable images
        label2id = {label: i for i, label in enumerate(self.labels or [])}
        return PairDataset(
            kept,
            self.load,
            partial(encode, processor, label2id),
            augment=augment if train and self.use_augment else None,
            seed=int(self.recipe.get("seed") or 42),
        )

    def load(self, example):
        from tasktool.io.images import load_image

        return load_image(example["path"]), {"objects": example["objects"], "scale": 1.0}

    def collator(self, processor):
        return DetectionCollator()


def check_classes(examples: list[dict], known: dict[str, int]) -> list[dict]:
    """Every box's class must be one the model has, naming the row and file otherwise."""
    for ex in examples:
        for obj in ex["objects"]:
            if obj["label"] not in known:
                raise TaskToolError(
                    f"{obj.get('_where') or ex['_where']} ({ex['path']}): class '{obj['label']}' is not one of "
                    f"the model's classes",
                    f"the model knows: {', '.join(sorted(known, key=label_key))}",
                )
    return examples


def augment(image, target, rng: random.Random):
    """A horizontal flip half of the time (boxes mirrored) and a random scale for the processor."""
    from PIL import Image

    objects = target["objects"]
    if rng.random() < 0.5:
        width = image.width
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        objects = [
            {**o, "box": [width - o["box"][2], o["box"][1], width - o["box"][0], o["box"][3]]}
            for o in objects
        ]
    return image, {"objects": objects, "scale": rng.uniform(*SCALES)}


def scaled_size(processor, scale: float) -> dict | None:
    """The processor's shortest/longest edge times `scale`; None: its own size (also for processors that
    resize to one fixed height x width, e.g. RT-DETR's, whose models want that size)."""
    size = getattr(processor, "size", None)
    if scale == 1.0 or size is None:
        return None
    size = {k: v for k, v in dict(size.items() if hasattr(size, "items") else vars(size)).items() if v}
    if "shortest_edge" not in size:
        return None
    return {k: max(16, round(size[k] * scale)) for k in ("shortest_edge", "longest_edge") if k in size}


def encode(processor, label2id: dict, image, target) -> dict:
    """The processor's pixels and DETR-style labels (classes, boxes as centre x/y, width, height
    relative to the image's own size) for one image; crowd boxes are left out."""
    objects = [o for o in target["objects"] if not o.get("crowd")]
    annotations = {
        "image_id": 0,
        "annotations": [
            {
                "bbox": [o["box"][0], o["box"][1], o["box"][2] - o["box"][0], o["box"][3] - o["box"][1]],
                "category_id": label2id[o["label"]],
                "area": (o["box"][2] - o["box"][0]) * (o["box"][3] - o["box"][1]),
                "iscrowd": 0,
            }
            for o in objects
        ],
    }
    kwargs = {}
    size = scaled_size(processor, target.get("scale", 1.0))
    if size:
        kwargs["size"] = size
    out = processor(images=image, annotations=annotations, return_tensors="pt", **kwargs)
    labels = out["labels"][0]
    pixels = out["pixel_values"][0]
    mask = out["pixel_mask"][0] if "pixel_mask" in out else pixels.new_ones(pixels.shape[-2:]).long()
    return {
        "pixel_values": pixels,
        "pixel_mask": mask,
        "labels": {"class_labels": labels["class_labels"].long(), "boxes": labels["boxes"].float()},
    }
