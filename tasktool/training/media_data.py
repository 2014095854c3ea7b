"""Audio and image training data: folders, metadata files, manifests and Hub datasets -> examples.

An example is {"path": a local file or URL, "label" or "text": the target, "_where": its row}.
Every file is decoded once before training starts (`decode_audio`, `check_images`): an unreadable
one is skipped with a warning that counts them, or stops the run with `strict`, so nothing can fail
in the middle of an epoch. Audio goes through tasktool.io.audio (soundfile + soxr): datasets' own
Audio decoding needs torchcodec, so Hub audio/image columns are read with decode=False.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from pathlib import Path

from tasktool.errors import ItemError, TaskToolError
from tasktool.io.media import AUDIO_SUFFIXES, IMAGE_SUFFIXES, manifest_path
from tasktool.training import data as D

AUDIO, IMAGE = "audio", "image"
PATH_DEFAULTS = (
    "file_name",
    "path",
    "audio",
    "image",
    "img",
    "file",
    "filename",
    "filepath",
    "audio_path",
    "image_path",
    "audio_file",
    "image_file",
)
LABEL_DEFAULTS = ("label", "labels", "class", "category", "target", "fine_label", "intent")
TEXT_DEFAULTS = ("transcription", "text", "sentence", "transcript", "normalized_text", "raw_transcription")
METADATA_FILES = ("metadata.csv", "metadata.jsonl", "metadata.tsv", "metadata.json", "metadata.parquet")
MANIFEST_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet")


def suffixes(kind: str) -> tuple[str, ...]:
    return AUDIO_SUFFIXES if kind == AUDIO else IMAGE_SUFFIXES


# ---------------------------------------------------------------------- reading


def read_examples(
    source: D.Source,
    kind: str,
    target: str,
    path_column: str | None = None,
    target_column: str | None = None,
    allow_outside: bool = False,
) -> list[dict]:
    """All examples of one split. `target` is "label" (classification) or "text" (transcription).

    Manifest paths stay inside the manifest's folder unless `allow_outside` (--allow-absolute-paths).
    """
    path = Path(source.path).expanduser()
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            rows, base = hub_rows(str(path), source.split or "train", kind), path
            allow_outside = True  # a saved dataset, not a hand-written manifest: its paths are its own
        elif meta := next((path / m for m in METADATA_FILES if (path / m).exists()), None):
            rows, base = _manifest_rows(meta), path
        elif target == "label":
            return _label_folders(path, kind, source)
        else:
            raise TaskToolError(
                f"folder '{source.path}' has no metadata.csv or metadata.jsonl",
                "add one with a file_name and a transcription column",
            )
    elif path.is_file():
        if path.suffix.lower() not in MANIFEST_SUFFIXES:
            raise TaskToolError(
                f"'{source.path}' is not a folder or a manifest",
                f"give a {kind} folder, or a .csv/.jsonl file with a path column",
            )
        rows, base = _manifest_rows(path), path.parent
        allow_outside = allow_outside or _held_out_split(path)
    elif source.split or not D._path_like(source.path):
        rows, base = hub_rows(source.path, source.split or "train", kind), None
    else:
        raise TaskToolError(f"data '{source.path}' not found", "check the path given to --data/--eval-data")
    if not rows:
        raise TaskToolError(f"'{source.name}' holds no rows", "give at least one example")
    first = rows[0]
    path_col = D.pick(first, path_column, PATH_DEFAULTS, f"{kind} path", "--path-column")
    flag = "--label-column" if target == "label" else "--transcription-column"
    target_col = D.pick(
        first,
        target_column,
        LABEL_DEFAULTS if target == "label" else TEXT_DEFAULTS,
        "label" if target == "label" else "transcription",
        flag,
    )
    return [
        _example(row, path_col, target_col, base, D.row_label(n, source), target, allow_outside)
        for n, row in enumerate(rows)
    ]


def _held_out_split(path: Path) -> bool:
    """The held-out split a fine-tuning run saved next to its model (metrics.json names it).

    Its paths are those of the training data, wherever that lives, so `tasktool evaluate` on it
    works without --allow-absolute-paths.
    """
    import json

    try:
        summary = json.loads((path.parent / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and summary.get("eval_data") == path.name


def _manifest_rows(path: Path) -> list[dict]:
    from tasktool.io.readers import read_rows

    rows = list(read_rows(path))
    bad = next((r for r in rows if not isinstance(r, dict)), None)
    if bad is not None:
        raise TaskToolError(
            f"'{path}' must hold rows with named columns", "use a .csv header or JSON objects"
        )
    return rows


def _label_folders(folder: Path, kind: str, source: D.Source) -> list[dict]:
    """One sub-folder per label; every media file inside it (recursively) is an example."""
    examples = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in sub.rglob("*") if p.is_file() and p.suffix.lower() in suffixes(kind))
        examples += [
            {"path": str(f), "label": sub.name, "_where": f"{source.name}: {sub.name}/{f.name}"}
            for f in files
        ]
    if not examples:
        raise TaskToolError(
            f"folder '{source.path}' holds no labelled {kind} files",
            f"put the files in one sub-folder per label ({', '.join(suffixes(kind))}), "
            "or add a metadata.csv with file_name and label columns",
        )
    return examples


def _example(
    row: dict,
    path_col: str,
    target_col: str,
    base: Path | None,
    where: str,
    target: str,
    allow_outside: bool = False,
) -> dict:
    value = D.field(row, path_col)
    from_dataset = isinstance(value, dict)  # datasets' {"path", "bytes"}: a file it wrote itself
    if from_dataset:
        value = materialise(value)
    if value is None or not str(value).strip():
        raise TaskToolError(f"{where}: no file in column '{path_col}'", "every row needs a file")
    value = str(value).strip()
    if base is not None and not from_dataset:
        value = manifest_path(value, base, where, allow_outside)
    raw = D.field(row, target_col)
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    text = "" if raw is None else str(raw).strip()
    if not text:
        what = "label" if target == "label" else "transcription"
        raise TaskToolError(f"{where}: empty {what} in column '{target_col}'", f"every row needs a {what}")
    return {"path": value, target: text, "_where": where}


def hub_rows(name: str, split: str, kind: str) -> list[dict]:
    """A Hub dataset or save_to_disk folder, with audio/image columns as files (never torchcodec)."""
    import datasets

    from tasktool.runtime import offline

    datasets.disable_progress_bars()
    path = Path(name).expanduser()
    try:
        if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
            ds = datasets.load_from_disk(str(path))
        elif not path.exists() and offline():
            raise TaskToolError(
                f"cannot fetch dataset '{name}': the Hugging Face Hub is unreachable (offline)",
                f"save it locally and pass its folder, or a {kind} folder, with --data",
            )
        else:
            ds = datasets.load_dataset(name, split=split)
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise TaskToolError(f"dataset '{name}' has no split '{split}'", f"splits: {', '.join(ds)}")
            ds = ds[split]
        for col, feat in ds.features.items():
            if isinstance(feat, (datasets.Audio, datasets.Image)) and feat.decode:
                ds = ds.cast_column(col, type(feat)(decode=False))
    except TaskToolError:
        raise
    except Exception as exc:  # noqa: BLE001 - datasets raises many types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TaskToolError(f"cannot load dataset '{name}': {first}", "check the name and the split") from exc
    labels = {col: feat.names for col, feat in ds.features.items() if isinstance(feat, datasets.ClassLabel)}
    rows = ds.to_list()
    for row in rows:
        for col, names in labels.items():
            if isinstance(row.get(col), int) and 0 <= row[col] < len(names):
                row[col] = names[row[col]]
    return rows


def media_cache() -> Path:
    return Path(os.environ.get("TASKTOOL_CACHE", Path.home() / ".cache" / "tasktool")).expanduser() / "media"


def materialise(value: dict) -> str | None:
    """datasets' {"path", "bytes"} cell -> a local file (embedded bytes are written to the cache once)."""
    path, data = value.get("path"), value.get("bytes")
    if path and (not data or Path(path).is_file()):
        return str(path)
    if not data:
        return None
    digest = hashlib.sha1(data).hexdigest()[:20]
    target = media_cache() / f"{digest}{Path(path or '').suffix[:8] or '.bin'}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return str(target)


# ---------------------------------------------------------------------- checking / decoding


def _report(bad: list[tuple[dict, ItemError]], total: int, kind: str, split: str, strict: bool) -> None:
    if not bad:
        return
    names = "; ".join(exc.message for _, exc in bad[:3]) + ("; ..." if len(bad) > 3 else "")
    if strict:
        raise TaskToolError(
            f"{len(bad)} of {total} {split} {kind} files cannot be read: {names}",
            "fix or remove them, or run without --strict to skip them",
        )
    from tasktool.console import warn

    warn(f"skipped {len(bad)} of {total} {split} {kind} file(s) that cannot be read: {names}")


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
    _report(bad, len(examples), AUDIO, split, strict)
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
    _report(bad, len(examples), IMAGE, split, strict)
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
            return {"pixel_values": pixels, "labels": self.label2id[ex["label"]]}
        raise TaskToolError("no training image can be read any more", "check the image files")


# ---------------------------------------------------------------------- evaluation through the engine


def engine_records(
    spec,
    model_dir: str,
    paths: list[str],
    batch_size: int = 8,
    device: str = "auto",
    strict: bool = False,
    kind: str = AUDIO,
    **opts,
) -> list[dict]:
    """Predictions from the same engine and predictor as `tasktool infer`; unreadable files counted."""
    from tasktool.engine import Engine, Item
    from tasktool.options import InferOptions

    options = InferOptions(model=model_dir, device=device, batch_size=batch_size, **opts)
    predictor = spec.load_predictor()(spec, options)
    engine = Engine(predictor, batch_size=batch_size, on_error="raise" if strict else "skip")
    try:
        records = list(engine.run(Item(i, p) for i, p in enumerate(paths)))
    except TaskToolError as exc:
        if strict:
            raise TaskToolError(
                exc.message, "fix or remove the file, or run without --strict to skip it"
            ) from exc
        raise
    bad = [(None, ItemError(r["error"])) for r in records if "error" in r]
    _report(bad, len(records), kind, "evaluation", strict=False)
    if len(bad) == len(records):
        raise _all_bad(len(records), kind, "evaluation")
    return records
