"""Audio and image training data: examples (read by tasktool.io.media) -> datasets for the Trainer.

Every file is decoded once before training starts (`decode_audio`, `check_images`): an unreadable
one is skipped with a warning that counts them, or stops the run with `strict`, so nothing can fail
in the middle of an epoch. Audio goes through tasktool.io.audio (soundfile + soxr).
"""

from __future__ import annotations

import math
import random

from tasktool.errors import ItemError, TaskToolError
from tasktool.io.kinds import AUDIO, IMAGE
from tasktool.io.media import report_unreadable

# ---------------------------------------------------------------------- checking / decoding


def _all_bad(total: int, kind: str, split: str) -> TaskToolError:
    return TaskToolError(f"none of the {total} {split} {kind} files can be read", "check the files and paths")


def decode_audio(
    examples: list[dict],
    sampling_rate: int,
    max_seconds: float | None = None,
    truncate: bool = True,
    strict: bool = False,
    split: str = "training",
    drop_long: bool = True,
) -> tuple[list[dict], list]:
    """(readable examples, their mono float32 audio). Long clips are cut (`truncate`) or dropped."""
    from tasktool.console import warn
    from tasktool.io.audio import load_audio

    kept, audios, bad, long = [], [], [], 0
    limit = int(max_seconds * sampling_rate) if max_seconds and max_seconds > 0 else None
    for ex in examples:
        try:
            audio = load_audio(ex["path"], sampling_rate)
        except ItemError as exc:
            bad.append((ex, exc))
            continue
        if limit and len(audio) > limit:
            if truncate:
                audio = audio[:limit]
            elif drop_long:
                long += 1
                continue
        kept.append(ex)
        audios.append(audio)
    report_unreadable(bad, len(examples), AUDIO, split, strict)
    if long:
        warn(f"left out {long} {split} clip(s) longer than max_audio_seconds={max_seconds:g}")
    if not kept:
        raise (
            _all_bad(len(examples), AUDIO, split)
            if bad
            else TaskToolError(
                f"every {split} clip is longer than max_audio_seconds={max_seconds:g}",
                "raise max_audio_seconds",
            )
        )
    return kept, audios


def check_images(examples: list[dict], strict: bool = False, split: str = "training") -> list[dict]:
    """The examples whose image decodes (fully: a truncated JPEG fails here, not mid-epoch)."""
    from tasktool.io.images import load_image

    kept, bad = [], []
    for ex in examples:
        try:
            load_image(ex["path"]).close()
        except ItemError as exc:
            bad.append((ex, exc))
            continue
        kept.append(ex)
    report_unreadable(bad, len(examples), IMAGE, split, strict)
    if not kept:
        raise _all_bad(len(examples), IMAGE, split)
    return kept


# ---------------------------------------------------------------------- datasets for the Trainer


def spec_augment_min_samples(config) -> int:
    """The shortest padded batch (in samples) that wav2vec2-style SpecAugment can mask.

    Training masks spans of `mask_time_length` frames and raises when a whole batch is shorter, so
    a batch of very short clips is padded (masked out by the attention mask) to this length instead.
    """
    if (
        not getattr(config, "apply_spec_augment", False)
        or not (getattr(config, "mask_time_prob", 0) or 0) > 0
    ):
        return 0
    frames = int(getattr(config, "mask_time_length", 0) or 0)
    ratio = int(getattr(config, "inputs_to_logits_ratio", 320) or 320)
    return (frames + 3) * ratio if frames else 0


def pad_kwargs(lengths: list[int], min_samples: int) -> dict:
    """Feature-extractor padding: to the longest clip, or up to `min_samples` when all are shorter."""
    if min_samples and max(lengths) < min_samples:
        return {"padding": "max_length", "max_length": min_samples}
    return {"padding": True}


class ListDataset:
    """A map-style dataset over prepared items (the Trainer takes any object with len and indexing)."""

    def __init__(self, items: list[dict]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def random_resized_crop(image, rng: random.Random, scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3)):
    """A light crop (60-100% of the area, near-square): enough variety without losing the subject."""
    width, height = image.size
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            x, y = rng.randint(0, width - w), rng.randint(0, height - h)
            return image.crop((x, y, x + w, y + h))
    return image


def augment(image, rng: random.Random):
    from PIL import Image

    image = random_resized_crop(image, rng)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image


class ImageDataset:
    """Images decoded on access, augmented for training, then the processor's resize + normalize.

    Files were checked before training; one that breaks afterwards (changed on disk) is replaced by
    the next readable example with a warning, never an exception in the middle of an epoch.
    """

    def __init__(
        self,
        examples: list[dict],
        label2id: dict[str, int],
        processor,
        train: bool,
        use_augment: bool = True,
        seed: int = 42,
    ):
        self.examples, self.label2id, self.processor = examples, label2id, processor
        self.train, self.use_augment = train, use_augment
        self.rng = random.Random(seed)
        self.broken: set[int] = set()

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        from tasktool.io.images import load_image

        for j in [i] + [k % len(self) for k in range(i + 1, i + len(self))]:
            if j in self.broken:
                continue
            ex = self.examples[j]
            try:
                image = load_image(ex["path"])
            except ItemError as exc:
                from tasktool.console import warn

                self.broken.add(j)
                warn(f"{exc.message}: using another image in its place")
                continue
            if self.train and self.use_augment:
                image = augment(image, self.rng)
            pixels = self.processor(images=image, return_tensors="pt")["pixel_values"][0]
            return {"pixel_values": pixels, "labels": self.label2id.get(ex["label"], -100)}
        raise TaskToolError("no training image can be read any more", "check the image files")


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
