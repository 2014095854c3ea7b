"""Labelled segmentation data: an image and a mask per example (a PNG of class ids; `ignore_index`,
default 255, marks pixels that belong to no class), optionally an instance map (an instance id per
pixel, 0 for stuff) for panoptic training and PQ.

Manifest columns `image` and `mask` (and `instances`), paths relative to the manifest; a folder with
images/ and masks/ (same file names); or a dataset with image and annotation columns. Class names
come from `id2label` (a JSON file), an id2label.json next to the data, `label_names`, or the ids.
"""

from __future__ import annotations

import json
from pathlib import Path

from tasktool.errors import TaskToolError
from tasktool.io.columns import field, pick
from tasktool.tasks.pixel_maps import MapReader, load_map, single_channel

INSTANCE_COLUMNS = ("instances", "instance", "instance_mask", "instance_map", "instance_ids")
NAMES_FILE = "id2label.json"


class Reader(MapReader):
    target_role = "mask"
    target_columns = ("mask", "annotation", "label", "segmentation", "seg", "mask_path", "semantic_map")
    target_folders = ("masks", "annotations", "labels", "segmentations")
    num_labels: int | None = None  # set by the trainer / evaluator: ids at or above it are refused

    folder: Path | None = None  # where the first data read (the training data) lives: its id2label.json

    def read(self, source):
        path = Path(source.path).expanduser()
        if self.folder is None:
            self.folder = path if path.is_dir() else path.parent if path.is_file() else None
        self._instance_col = None
        return super().read(source)

    def extra(self, row, where):
        if self._instance_col is None:
            self._instance_col = pick(row, None, INSTANCE_COLUMNS, "instance map", required=False) or ""
        if not self._instance_col:
            return {}
        value = field(row, self._instance_col)
        if value is None or not str(value).strip():
            return {}
        return {"instances": self.file(row, self._instance_col, where, "instance map")}

    def eval_row(self, example: dict) -> dict:
        row = super().eval_row(example)
        if row.get("instances"):
            row["instances"] = str(Path(row["instances"]).resolve())
        return row

    @property
    def ignore_index(self) -> int:
        value = self.recipe.get("ignore_index")
        return 255 if value is None else int(value)

    @property
    def panoptic(self) -> bool:
        subtask = (self.recipe.get("subtask") or "semantic").lower()
        if subtask not in ("semantic", "panoptic"):
            raise TaskToolError(
                f"unknown subtask '{subtask}' for training or evaluation", "use semantic or panoptic"
            )
        return subtask == "panoptic"

    # ------------------------------------------------------------------ class names

    def class_names(self) -> list[str] | None:
        """Names from `id2label`, an id2label.json next to the data, or `label_names`; None: from the ids."""
        ref = self.recipe.get("id2label")
        path = Path(ref).expanduser() if ref else None
        if (
            path is None
            and getattr(self, "folder", None) is not None
            and (self.folder / NAMES_FILE).is_file()
        ):
            path = self.folder / NAMES_FILE
        if path is not None:
            return read_names(path)
        names = self.recipe.get("label_names")
        return list(names) if names else None

    # ------------------------------------------------------------------ maps

    def mask(self, example: dict, values=None):
        """Class ids (h, w) int64; pixels that belong to no class hold `ignore_index`."""
        import numpy as np

        values = load_map(example["target"]) if values is None else values
        values = single_channel(values, example["_where"], example["target"], "mask")
        if values.dtype.kind == "f":
            if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
                raise TaskToolError(
                    f"{example['_where']}: mask '{example['target']}' holds fractions",
                    "a mask holds whole class ids (a PNG of class indices)",
                )
        ids = values.astype(np.int64)
        if self.recipe.get("reduce_labels"):
            ids = np.where((ids == 0) | (ids == self.ignore_index), self.ignore_index, ids - 1)
        return ids

    def instances(self, example: dict):
        """Instance ids (h, w) int64 (0: stuff), or None without an instance map."""
        if not example.get("instances"):
            return None
        values = load_map(example["instances"])
        return single_channel(values, example["_where"], example["instances"], "instance map").astype("int64")

    def check(self, example: dict, values) -> dict:
        """A one-line error for a mask with a class id the model has no label for, or a bad instance map."""
        import numpy as np

        ids = self.mask(example, values)
        found = np.unique(ids[ids != self.ignore_index])
        if self.num_labels is not None and found.size and (found.max() >= self.num_labels or found.min() < 0):
            bad = int(found.max() if found.max() >= self.num_labels else found.min())
            raise TaskToolError(
                f"{example['_where']}: mask '{example['target']}' has class id {bad}, but there are "
                f"{self.num_labels} classes (ids 0-{self.num_labels - 1})",
                f"fix the mask, give every class a name (id2label), or mark unlabelled pixels with "
                f"ignore_index={self.ignore_index}",
            )
        if self.panoptic and not example.get("instances"):
            raise TaskToolError(
                f"{example['_where']}: subtask=panoptic needs an instance map",
                f"add an '{INSTANCE_COLUMNS[0]}' column (an instance id per pixel, 0 for stuff)",
            )
        if self.panoptic:
            inst = self.instances(example)
            if inst.shape != ids.shape:
                raise TaskToolError(
                    f"{example['_where']}: instance map '{example['instances']}' is {inst.shape[1]}x{inst.shape[0]} "
                    f"but the mask is {ids.shape[1]}x{ids.shape[0]}",
                    "the instance map must have its image's size",
                )
        return example

    def segments(self, example: dict):
        """(segment map, {segment id: class id}) for training: one segment per class (semantic), or per
        (class, instance) pair (panoptic; stuff pixels, instance 0, make one segment per class). Segment
        ids start at 1; 0 marks pixels that are not scored."""
        import numpy as np

        ids = self.mask(example)
        inst = self.instances(example) if self.panoptic else None
        valid = ids != self.ignore_index
        keys = ids if inst is None else ids * (int(inst.max()) + 1) + inst
        segments = np.zeros(ids.shape, dtype=np.int32)
        mapping = {}
        for n, key in enumerate(np.unique(keys[valid]).tolist(), start=1):
            where = valid & (keys == key)
            segments[where] = n
            mapping[n] = int(ids[where][0])
        return segments, mapping


def read_names(path: Path) -> list[str]:
    """Class names from a JSON file: {"0": "road", "1": "car"} or ["road", "car"]."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TaskToolError(f"id2label file '{path}' not found", "check the path given to id2label") from exc
    except (OSError, ValueError) as exc:
        raise TaskToolError(
            f"cannot read id2label file '{path}': {exc}", 'give {"0": "name", ...} or a list'
        ) from exc
    if isinstance(data, dict) and isinstance(data.get("id2label"), dict):
        data = data["id2label"]  # a model's config.json
    if isinstance(data, list):
        return [str(x) for x in data]
    if isinstance(data, dict):
        try:
            ids = {int(k): str(v) for k, v in data.items()}
        except ValueError as exc:
            raise TaskToolError(
                f"id2label file '{path}': keys must be class ids", 'e.g. {"0": "road"}'
            ) from exc
        missing = [i for i in range(max(ids) + 1) if i not in ids] if ids else []
        if missing:
            raise TaskToolError(
                f"id2label file '{path}' has no name for class id {missing[0]}", "name every id from 0 up"
            )
        return [ids[i] for i in range(len(ids))]
    raise TaskToolError(
        f"id2label file '{path}' must hold a mapping or a list", 'e.g. {"0": "road", "1": "car"}'
    )
