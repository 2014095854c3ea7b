"""What fine-tuning and scoring the vision tasks with per-image targets share (boxes, masks, per-pixel
values): the image processor saved with the model, datasets decoded on access (every file checked once
before training), batches padded to their largest image with a pixel mask, evaluators that score each
prediction as it comes out of the engine, and prediction-vs-truth pictures in the output folder.
"""

from __future__ import annotations

import random
from pathlib import Path

from tasktool.errors import ItemError, TaskToolError
from tasktool.evaluator import Evaluator, report_skipped
from tasktool.training.trainer import TaskTrainer

PICTURES = 4  # eval images drawn into a fine-tuned model's folder
PICTURE_DIR = "eval_pictures"
PICTURE_HEIGHT = 192  # smaller images are enlarged (whole multiples) before drawing, so labels stay readable


class ImageTaskTrainer(TaskTrainer):
    """Base of the vision trainers: the image processor, and Trainer arguments for decoded-image batches."""

    @property
    def strict(self) -> bool:
        return bool(self.recipe.get("strict"))

    @property
    def use_augment(self) -> bool:
        value = self.recipe.get("augment")
        return True if value is None else bool(value)

    def load_processor(self, ref: str):
        from tasktool.tasks.vision import load_image_processor

        return load_image_processor(ref, revision=self.recipe.get("revision"))

    def training_arguments(self, ckpt_dir, log_dir, has_eval, **extra):
        args = super().training_arguments(ckpt_dir, log_dir, has_eval, **extra)
        args.remove_unused_columns = False  # the collators take decoded images and targets
        args.prediction_loss_only = True  # the eval loss only: the task's Evaluator scores the saved model
        if getattr(args, "train_sampling_strategy", None) == "group_by_length":
            args.train_sampling_strategy = "random"  # needs token lengths; images have none
        return args


class PairDataset:
    """Examples decoded on access: `load(example) -> (image, target)`, `augment(image, target, rng)`
    while training, then `encode(image, target) -> features`. Files were checked before training; one
    that breaks afterwards is replaced by the next readable example with a warning."""

    def __init__(self, examples, load, encode, augment=None, seed: int = 42):
        self.examples, self.load, self.encode, self.augment = examples, load, encode, augment
        self.rng = random.Random(seed)
        self.broken: set[int] = set()

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        for j in [i] + [k % len(self) for k in range(i + 1, i + len(self))]:
            if j in self.broken:
                continue
            try:
                image, target = self.load(self.examples[j])
            except ItemError as exc:
                from tasktool.console import warn

                self.broken.add(j)
                warn(f"{exc.message}: using another example in its place")
                continue
            if self.augment is not None:
                image, target = self.augment(image, target, self.rng)
            return self.encode(image, target)
        raise TaskToolError("no training image can be read any more", "check the image files")


def pad_images(pixels: list) -> tuple:
    """(pixel_values, pixel_mask): images (3, h, w) padded at the bottom and right to the batch's
    largest, with 1 where a pixel is the image's own (the processors' own padding, done per batch)."""
    import torch

    height = max(p.shape[-2] for p in pixels)
    width = max(p.shape[-1] for p in pixels)
    values = pixels[0].new_zeros((len(pixels), pixels[0].shape[0], height, width))
    mask = torch.zeros((len(pixels), height, width), dtype=torch.long)
    for n, p in enumerate(pixels):
        values[n, :, : p.shape[-2], : p.shape[-1]] = p
        mask[n, : p.shape[-2], : p.shape[-1]] = 1
    return values, mask


def pad_maps(maps: list, fill) -> object:
    """Per-pixel targets (h, w) padded like `pad_images`, with `fill` (a value the loss ignores)."""
    height = max(m.shape[-2] for m in maps)
    width = max(m.shape[-1] for m in maps)
    out = maps[0].new_full((len(maps), *maps[0].shape[:-2], height, width), fill)
    for n, m in enumerate(maps):
        out[n, ..., : m.shape[-2], : m.shape[-1]] = m
    return out


def flip(image, target, rng: random.Random, flip_target):
    """A horizontal flip of the image and its target together, half of the time."""
    from PIL import Image

    if rng.random() < 0.5:
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), flip_target(target, image.width)
    return image, target


# ---------------------------------------------------------------------- evaluation


class StreamingEvaluator(Evaluator):
    """Scores each prediction as the engine yields it (per-pixel maps are big: none is kept), through
    the `update(example, record)` hook; keeps the first few for the pictures. Unreadable images are
    skipped and counted (stopped with `strict`), as for the other media tasks."""

    on_error = "skip"

    def check(self, examples, config):
        self.config = config
        self.examples = self.check_examples(examples, config)
        self.shown: list = []
        self.reset()
        return self.examples

    def check_examples(self, examples: list[dict], config) -> list[dict]:
        """Task hook: the examples the model can be scored on; raise naming a row and file."""
        return examples

    def reset(self) -> None:
        """Task hook: start the metric's state."""

    def update(self, example: dict, record: dict) -> None:
        """Task hook: add one prediction (its record, with the private per-pixel `_map`) to the state."""

    def predictions(self, model_dir, payloads, batch_size, device, max_length):
        from tasktool.engine import Engine, Item
        from tasktool.options import InferOptions

        strict = bool(self.recipe.get("strict"))
        self.on_error = "raise" if strict else "skip"
        options = InferOptions(model=model_dir, device=device, batch_size=batch_size, **self.infer_options())
        predictor = self.spec.load_predictor()(self.spec, options)
        engine = Engine(predictor, batch_size=batch_size, on_error=self.on_error)
        records = []
        try:
            for record in engine.run(Item(i, p) for i, p in enumerate(payloads)):
                if "error" not in record:
                    example = self.examples[record["id"]]
                    self.update(example, record)
                    if len(self.shown) < PICTURES:  # with its map, for the pictures
                        self.shown.append((example, dict(record)))
                record.pop("_map", None)
                records.append(record)
        except TaskToolError as exc:
            if strict:
                raise TaskToolError(
                    exc.message, "fix or remove the file, or run without --strict to skip it"
                ) from exc
            raise
        report_skipped(records, "image", strict=False)
        return records

    def infer_options(self) -> dict:
        return {"extra": {"keep_maps": True}}

    def payload(self, ex):
        return ex["path"]

    def scored(self, records: list[dict]) -> tuple[int, int]:
        """(examples scored, examples skipped)."""
        ok = sum("error" not in r for r in records)
        return ok, len(records) - ok


# ---------------------------------------------------------------------- pictures


def enlarge(image, *maps):
    """(factor, image, maps): a small picture and its per-pixel maps scaled up by a whole factor
    (nearest neighbour: map values stay exact) to about PICTURE_HEIGHT pixels high."""
    import numpy as np
    from PIL import Image

    factor = max(1, -(-PICTURE_HEIGHT // max(1, image.height)))
    if factor == 1:
        return 1, image, maps
    big = image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    return factor, big, tuple(np.repeat(np.repeat(m, factor, axis=0), factor, axis=1) for m in maps)


def titled(image, title: str):
    """The picture with a one-line title strip above it."""
    from PIL import Image, ImageDraw, ImageFont

    strip = max(12, min(24, image.width // 12))
    try:
        font = ImageFont.load_default(size=strip - 3)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        font = ImageFont.load_default()
    canvas = Image.new("RGB", (image.width, image.height + strip), (255, 255, 255))
    canvas.paste(image.convert("RGB"), (0, strip))
    ImageDraw.Draw(canvas).text((2, 1), title, fill=(0, 0, 0), font=font)
    return canvas


def side_by_side(panels: list[tuple[object, str]]):
    """Titled pictures in a row (e.g. image | truth | prediction), scaled to one height."""
    from PIL import Image

    height = max(p.height for p, _ in panels)
    scaled = []
    for picture, title in panels:
        if picture.height != height:
            width = max(1, round(picture.width * height / picture.height))
            picture = picture.resize((width, height), Image.Resampling.NEAREST)
        scaled.append(titled(picture, title))
    gap = 4
    canvas = Image.new(
        "RGB", (sum(p.width for p in scaled) + gap * (len(scaled) - 1), scaled[0].height), (255, 255, 255)
    )
    x = 0
    for picture in scaled:
        canvas.paste(picture, (x, 0))
        x += picture.width + gap
    return canvas


def save_pictures(folder: Path, pictures: list[tuple[str, object]], what: str) -> list[str]:
    """Pictures into `folder/eval_pictures/`; the model card section that shows them."""
    from tasktool.io.images import stem
    from tasktool.io.visuals import save_png

    if not pictures:
        return []
    lines = ["## Predictions on evaluation images", "", what, ""]
    for n, (source, picture) in enumerate(pictures):
        name = f"{PICTURE_DIR}/{n}-{stem(source)}.png"
        save_png(picture, Path(folder) / name)
        lines.append(f"![{stem(source)}]({name})")
    return lines
