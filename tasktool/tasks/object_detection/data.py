"""Labelled detection data: images with boxes and their classes, from
- COCO JSON (`images` + `annotations` + `categories`; file names relative to the JSON's folder or its
  images/ sub-folder; crowd boxes are not trained on and not scored),
- a CSV with one row per box `filename,class,xmin,ymin,xmax,ymax` (optional `width,height`; paths
  relative to the CSV; a row without a box lists an image with no object), or
- rows with an image column and an `objects` column (`bbox` as COCO [x, y, width, height],
  `category` as names or ids): JSONL manifests, saved datasets, Hub datasets.

Each example is {"path", "width", "height", "objects": [{"label", "box": [xmin, ymin, xmax, ymax],
"crowd"}], "_where"}. Boxes that stick out of the image are clipped to it; a box with no area inside
the image, or a class missing from `categories`, is a one-line error naming the row and file.
"""

from __future__ import annotations

import json
from pathlib import Path

from tasktool.errors import ItemError, TaskToolError
from tasktool.io.columns import field, pick
from tasktool.io.labelled import Reader as BaseReader
from tasktool.io.media import PATH_COLUMNS, is_held_out_split, manifest_path, materialise
from tasktool.io.readers import Source, is_saved_dataset, load_rows

CLASS_COLUMNS = ("class", "label", "category", "name", "class_name")
BOX_COLUMNS = ("xmin", "ymin", "xmax", "ymax")
OBJECT_COLUMNS = ("objects", "annotations", "boxes")
COCO_FILES = ("annotations.json", "_annotations.coco.json", "coco.json", "instances.json")


class Reader(BaseReader):
    categories: list[str] | None = None  # COCO categories of the first file read (the training data)

    def read(self, source: Source) -> list[dict]:
        allow = bool(self.recipe.get("allow_absolute_paths"))
        path = Path(source.path).expanduser()
        if path.is_dir() and not is_saved_dataset(path):
            found = next((path / n for n in COCO_FILES if (path / n).is_file()), None)
            if found is None:
                raise TaskToolError(
                    f"folder '{source.path}' holds no COCO annotation file ({', '.join(COCO_FILES)})",
                    "pass the COCO .json, a CSV of boxes or a JSONL manifest with an objects column",
                )
            path, source = found, Source(str(found))
        if path.is_file() and path.suffix.lower() == ".json" and _is_coco(path):
            return self._coco(path, allow)
        rows = load_rows(source)
        base, allow = (path.parent, allow or is_held_out_split(path)) if path.is_file() else (None, True)
        image_col = pick(rows[0], self.columns.get("path"), PATH_COLUMNS, "image path", "--path-column")
        objects_col = pick(
            rows[0], self.columns.get("target"), OBJECT_COLUMNS, "objects", "--target-column", False
        )
        if objects_col:
            names = _dataset_names(source, objects_col) if base is None else None
            return [
                self._row_with_objects(
                    row, image_col, objects_col, base, allow, f"{source.name}, row {n + 1}", names
                )
                for n, row in enumerate(rows)
            ]
        return self._box_rows(rows, image_col, base, allow, source)

    def eval_row(self, example: dict) -> dict:
        """The objects-column form (COCO boxes), absolute paths: eval.jsonl reads back from the output folder."""
        path = example["path"]
        boxes = example["objects"]
        return {
            "image": path if path.startswith(("http://", "https://")) else str(Path(path).resolve()),
            "width": example["width"],
            "height": example["height"],
            "objects": {
                "bbox": [[b[0], b[1], b[2] - b[0], b[3] - b[1]] for b in (o["box"] for o in boxes)],
                "category": [o["label"] for o in boxes],
                "iscrowd": [int(o.get("crowd", False)) for o in boxes],
            },
        }

    # ------------------------------------------------------------------ formats

    def _coco(self, path: Path, allow: bool) -> list[dict]:
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except ValueError as exc:
            raise TaskToolError(f"'{path}' is not valid JSON: {exc}", "check the file") from exc
        categories = {int(c["id"]): str(c.get("name", c["id"])) for c in data.get("categories") or []}
        if not categories:
            raise TaskToolError(
                f"'{path}': no categories", "a COCO file lists its classes under 'categories'"
            )
        if self.categories is None:
            self.categories = [categories[k] for k in sorted(categories)]
        images, by_image = {}, {}
        for n, image in enumerate(data.get("images") or []):
            where = f"{path}, image {n + 1} (id {image.get('id')})"
            name = str(image.get("file_name") or "").strip()
            if not name:
                raise TaskToolError(f"{where}: no file_name", "every COCO image needs a file_name")
            local = path.parent / name
            if not local.exists() and (path.parent / "images" / name).exists():
                name = f"images/{name}"
            images[image.get("id")] = {
                "path": manifest_path(name, path.parent, where, allow or is_held_out_split(path)),
                "width": image.get("width"),
                "height": image.get("height"),
                "_where": f"{path}: {image.get('file_name')}",
            }
            by_image[image.get("id")] = []
        for n, ann in enumerate(data.get("annotations") or []):
            where = f"{path}, annotation {n + 1} (id {ann.get('id')})"
            if ann.get("image_id") not in images:
                raise TaskToolError(
                    f"{where}: image_id {ann.get('image_id')} is not in 'images'", "check the file"
                )
            category = ann.get("category_id")
            if category not in categories:
                raise TaskToolError(
                    f"{where} ({images[ann['image_id']]['path']}): category_id {category} is not in 'categories'",
                    f"the categories are {', '.join(f'{k}: {v}' for k, v in sorted(categories.items()))}",
                )
            box = _xywh(ann.get("bbox"), where)
            by_image[ann["image_id"]].append(
                {
                    "label": categories[category],
                    "box": box,
                    "crowd": bool(ann.get("iscrowd")),
                    "_where": where,
                }
            )
        if not images:
            raise TaskToolError(f"'{path}' lists no images", "a COCO file lists its images under 'images'")
        return [self._example({**images[k], "objects": by_image[k]}) for k in images]

    def _row_with_objects(self, row, image_col, objects_col, base, allow, where, names) -> dict:
        image = _file(row, image_col, base, where, allow)
        objects = field(row, objects_col)
        if isinstance(objects, str):
            try:
                objects = json.loads(objects)
            except ValueError as exc:
                raise TaskToolError(
                    f"{where}: column '{objects_col}' is not JSON", "give {bbox, category}"
                ) from exc
        if isinstance(objects, list):  # a list of {bbox, category} objects
            objects = {
                "bbox": [o.get("bbox") for o in objects],
                "category": [o.get("category", o.get("label")) for o in objects],
                "iscrowd": [o.get("iscrowd", 0) for o in objects],
            }
        if not isinstance(objects, dict) or "bbox" not in objects:
            raise TaskToolError(
                f"{where}: column '{objects_col}' must hold {{bbox: [[x, y, w, h], ...], category: [...]}}",
                "boxes in COCO format: corner x, y, then width and height",
            )
        boxes = objects.get("bbox") or []
        classes = objects.get("category", objects.get("label")) or []
        crowd = objects.get("iscrowd") or [0] * len(boxes)
        if len(classes) != len(boxes):
            raise TaskToolError(
                f"{where}: {len(boxes)} boxes but {len(classes)} categories", "one category per box"
            )
        found = []
        for box, cls, is_crowd in zip(boxes, classes, crowd, strict=False):
            if isinstance(cls, int) and names and 0 <= cls < len(names):
                cls = names[cls]
            found.append(
                {"label": str(cls), "box": _xywh(box, where), "crowd": bool(is_crowd), "_where": where}
            )
        return self._example(
            {
                "path": image,
                "width": row.get("width"),
                "height": row.get("height"),
                "objects": found,
                "_where": where,
            }
        )

    def _box_rows(self, rows, image_col, base, allow, source) -> list[dict]:
        first = rows[0]
        class_col = pick(first, self.columns.get("label"), CLASS_COLUMNS, "class", "--label-column")
        missing = [c for c in BOX_COLUMNS if c not in first]
        if missing:
            raise TaskToolError(
                f"'{source.name}' has no {', '.join(missing)} column(s); columns found: {', '.join(map(str, first))}",
                "give one row per box: filename,class,xmin,ymin,xmax,ymax; COCO JSON; or an objects column",
            )
        images: dict[str, dict] = {}
        for n, row in enumerate(rows):
            where = f"{source.name}, row {n + 1}"
            image = _file(row, image_col, base, where, allow)
            entry = images.setdefault(
                image,
                {
                    "path": image,
                    "width": row.get("width"),
                    "height": row.get("height"),
                    "objects": [],
                    "_where": where,
                },
            )
            cells = [field(row, c) for c in BOX_COLUMNS]
            label = field(row, class_col)
            if all(c in (None, "") for c in cells) and label in (None, ""):
                continue  # an image with no object
            try:
                box = [float(c) for c in cells]
            except (TypeError, ValueError):
                raise TaskToolError(
                    f"{where}: box {cells} is not four numbers", "xmin,ymin,xmax,ymax in pixels"
                ) from None
            if label in (None, "") or not str(label).strip():
                raise TaskToolError(
                    f"{where}: empty class in column '{class_col}'", "every box needs a class"
                )
            entry["objects"].append(
                {"label": str(label).strip(), "box": box, "crowd": False, "_where": where}
            )
        return [self._example(e) for e in images.values()]

    def _example(self, example: dict) -> dict:
        """Image size from the data or the image header; boxes clipped to it (none left: an error)."""
        width, height = example.get("width"), example.get("height")
        if not width or not height:
            from tasktool.io.images import ImageRef

            try:
                ref = ImageRef.open(example["path"])
                width, height = ref.width, ref.height
            except ItemError:
                width = height = None  # unreadable: skipped and counted when the images are decoded
        example["width"] = int(float(width)) if width else None
        example["height"] = int(float(height)) if height else None
        objects = []
        for obj in example["objects"]:
            x0, y0, x1, y1 = obj["box"]
            if x1 <= x0 or y1 <= y0:
                raise TaskToolError(
                    f"{obj['_where']} ({example['path']}): box {_show(obj['box'])} has no area",
                    "corners must be xmin < xmax and ymin < ymax",
                )
            if example["width"]:
                w, h = example["width"], example["height"]
                clipped = [
                    min(max(x0, 0.0), w),
                    min(max(y0, 0.0), h),
                    min(max(x1, 0.0), w),
                    min(max(y1, 0.0), h),
                ]
                if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
                    raise TaskToolError(
                        f"{obj['_where']} ({example['path']}): box {_show(obj['box'])} is outside the "
                        f"{w}x{h} image",
                        "check the box coordinates (pixels, xmin,ymin,xmax,ymax; COCO: x,y,width,height)",
                    )
                obj = {**obj, "box": clipped}
            objects.append(obj)
        example["objects"] = objects
        return example


def _is_coco(path: Path) -> bool:
    with open(path, encoding="utf-8-sig") as fh:
        head = fh.read(4096)
    return head.lstrip().startswith("{") and any(
        k in head for k in ('"images"', '"annotations"', '"categories"')
    )


def _xywh(box, where: str) -> list[float]:
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError):
        raise TaskToolError(
            f"{where}: bbox {box!r} is not [x, y, width, height]", "COCO boxes: four numbers"
        ) from None
    return [x, y, x + w, y + h]


def _show(box) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def _file(row: dict, column: str, base, where: str, allow: bool) -> str:
    value = field(row, column)
    own = isinstance(value, dict)
    if own:
        value = materialise(value)
    if value is None or not str(value).strip():
        raise TaskToolError(f"{where}: no image in column '{column}'", "every row needs an image")
    value = str(value).strip()
    return manifest_path(value, base, where, allow) if base is not None and not own else value


def _dataset_names(source: Source, column: str) -> list[str] | None:
    """Class names of a dataset's objects column when its categories are ClassLabel ids."""
    try:
        from tasktool.io.readers import open_dataset

        feature = open_dataset(source.path, source.split or "train").features.get(column)
    except TaskToolError:
        return None
    inner = feature
    for _ in range(4):  # {"category": Sequence(ClassLabel)} or List({"category": ClassLabel})
        if isinstance(inner, dict):
            inner = inner.get("category", inner.get("label"))
        elif hasattr(inner, "names"):
            return list(inner.names)
        else:
            inner = getattr(inner, "feature", None)
    return None
