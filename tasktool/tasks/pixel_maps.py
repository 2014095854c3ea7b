"""Labelled data that pairs each image with a map of the same size (a PNG of class ids, a 16-bit PNG
or .npy of per-pixel values): read from a manifest (CSV/JSONL with an image and a map column, paths
relative to it), a folder with a metadata file, a folder of `images/` next to a folder of maps with the
same file stems, or a dataset (image and map columns as files). Shared by the tasks whose target is a
map; each names its map column, its map folders and what a valid map holds.
"""

from __future__ import annotations

from pathlib import Path

from tasktool.errors import ItemError, TaskToolError
from tasktool.io.columns import field, pick
from tasktool.io.labelled import Reader
from tasktool.io.media import (
    IMAGE_SUFFIXES,
    METADATA_FILES,
    PATH_COLUMNS,
    is_held_out_split,
    manifest_path,
    materialise,
)
from tasktool.io.readers import Source, is_saved_dataset, load_rows, read_rows

MAP_SUFFIXES = (".png", ".npy", ".tif", ".tiff", ".bmp", ".pgm")
IMAGE_FOLDERS = ("images", "image", "imgs", "img", "rgb")


class MapReader(Reader):
    """Image + map examples: {"path": image, "target": map file, "_where": row}."""

    target_role = "map"  # its name in messages
    target_columns: tuple[str, ...] = ("map",)  # default map column names
    target_folders: tuple[str, ...] = ("maps",)  # folders of maps next to images/

    def read(self, source: Source) -> list[dict]:
        rows, base, allow_outside = self._rows(source)
        if not rows:
            raise TaskToolError(f"'{source.name}' holds no rows", "give at least one example")
        allow_outside = allow_outside or bool(self.recipe.get("allow_absolute_paths"))
        image_col = pick(rows[0], self.columns.get("path"), PATH_COLUMNS, "image path", "--path-column")
        target_col = pick(
            rows[0],
            self.columns.get("target"),
            self.target_columns,
            f"{self.target_role} file",
            "--target-column",
        )
        self._base, self._allow_outside = base, allow_outside
        examples = []
        for n, row in enumerate(rows):
            where = row.get("_where") or f"{source.name}, row {n + 1}"
            image = self.file(row, image_col, where, "image")
            target = self.file(row, target_col, where, self.target_role)
            examples.append({**self.extra(row, where), "path": image, "target": target, "_where": where})
        return examples

    def file(self, row: dict, column: str, where: str, role: str) -> str:
        """A row's file in `column`: resolved against the manifest's folder, or a dataset's own file."""
        base = None if row.get("_where") else self._base  # folder pairs hold absolute paths already
        return _file(row, column, base, where, role, self._allow_outside)

    def extra(self, row: dict, where: str) -> dict:
        """Task hook: other fields an example carries (e.g. an instance map)."""
        return {}

    def eval_row(self, example: dict) -> dict:
        """Absolute paths under the default column names, so eval.jsonl reads back from the output folder."""
        row = {k: v for k, v in example.items() if not k.startswith("_") and k not in ("path", "target")}
        return {
            "image": _absolute(example["path"]),
            self.target_columns[0]: _absolute(example["target"]),
            **row,
        }

    def _rows(self, source: Source) -> tuple[list[dict], Path | None, bool]:
        """(rows, the folder their paths are relative to (None: a dataset's own files), paths may leave it)."""
        path = Path(source.path).expanduser()
        if path.is_dir() and not is_saved_dataset(path):
            meta = next((path / m for m in METADATA_FILES if (path / m).exists()), None)
            if meta is not None:
                return _table(meta), path, False
            return self._folder_pairs(path, source), None, True
        if path.is_file():
            return _table(path), path.parent, is_held_out_split(path)
        return load_rows(source), None, True  # a dataset: image columns come as files it wrote itself

    def _folder_pairs(self, folder: Path, source: Source) -> list[dict]:
        images_dir = next((folder / d for d in IMAGE_FOLDERS if (folder / d).is_dir()), None)
        maps_dir = next((folder / d for d in self.target_folders if (folder / d).is_dir()), None)
        if images_dir is None or maps_dir is None:
            raise TaskToolError(
                f"folder '{source.path}' has no metadata.csv/jsonl and no images/ + "
                f"{self.target_folders[0]}/ folders",
                f"add a manifest with image and {self.target_columns[0]} columns, or put the images in "
                f"images/ and their {self.target_role}s (same file names) in {self.target_folders[0]}/",
            )
        maps = {p.stem: p for p in sorted(maps_dir.iterdir()) if p.suffix.lower() in MAP_SUFFIXES}
        rows = []
        for image in sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            where = f"{source.name}: {images_dir.name}/{image.name}"
            if image.stem not in maps:
                raise TaskToolError(
                    f"{where}: no {self.target_role} named '{image.stem}.*' in {maps_dir.name}/",
                    f"every image needs a {self.target_role} file with the same name",
                )
            rows.append({"image": str(image), self.target_columns[0]: str(maps[image.stem]), "_where": where})
        if not rows:
            raise TaskToolError(
                f"folder '{images_dir}' holds no images", f"supported: {', '.join(IMAGE_SUFFIXES)}"
            )
        return rows


def _table(path: Path) -> list[dict]:
    rows = list(read_rows(path))
    if any(not isinstance(r, dict) for r in rows):
        raise TaskToolError(
            f"'{path}' must hold rows with named columns", "use a .csv header or JSON objects"
        )
    return rows


def _absolute(path: str) -> str:
    return path if path.startswith(("http://", "https://")) else str(Path(path).resolve())


def _file(row: dict, column: str, base: Path | None, where: str, role: str, allow_outside: bool) -> str:
    value = field(row, column)
    own = isinstance(value, dict)  # datasets' {"path", "bytes"}: a file it wrote itself
    if own:
        value = materialise(value)
    if isinstance(value, (list, tuple)):
        raise TaskToolError(
            f"{where}: column '{column}' holds an array, not a file",
            f"give each {role} as an image or .npy file",
        )
    if value is None or not str(value).strip():
        raise TaskToolError(f"{where}: no {role} file in column '{column}'", f"every row needs a {role}")
    value = str(value).strip()
    if base is not None and not own:
        value = manifest_path(value, base, where, allow_outside)
    return value


# ---------------------------------------------------------------------- decoding maps


def load_map(path: str):
    """A map file as a numpy array: (h, w) for one channel, (h, w, c) otherwise. .npy files are read
    without pickle; images keep their values (16-bit PNGs stay 16-bit, palette PNGs give the indices)."""
    import numpy as np

    if Path(path).suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ItemError(f"cannot read '{path}': {' '.join(str(exc).split())}") from exc
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        return array
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode == "P" and "transparency" not in image.info:
                return np.asarray(image)  # palette indices are the class ids
            if image.mode in ("1", "L", "P", "I", "I;16", "I;16B", "I;16L", "F"):
                return np.asarray(image.convert("L") if image.mode in ("1", "P") else image)
            return np.asarray(image)
    except FileNotFoundError as exc:
        raise ItemError(f"cannot read '{path}': file not found") from exc
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for damaged files
        first = " ".join(str(exc).split()) or type(exc).__name__
        raise ItemError(f"cannot read '{path}': {first}") from exc


def single_channel(array, where: str, path: str, role: str):
    """The map as (h, w), or a one-line error naming the row and file."""
    if array.ndim == 2:
        return array
    if array.ndim == 3 and array.shape[-1] > 1 and (array == array[..., :1]).all():
        return array[..., 0]  # a grey map saved as RGB: every channel the same
    shape = "x".join(str(s) for s in array.shape)
    raise TaskToolError(
        f"{where}: {role} '{path}' is not single-channel (shape {shape})",
        f"give each {role} as a one-channel PNG or an (h, w) .npy array",
    )


def image_size(path: str) -> tuple[int, int]:
    """(width, height) from the image header (EXIF-rotated as the pixels will be)."""
    from tasktool.io.images import ImageRef

    ref = ImageRef.open(path)
    return ref.width, ref.height


def check_pairs(examples: list[dict], check, strict: bool, split: str, role: str = "map") -> list[dict]:
    """The examples whose image and map both read, each passed through `check(example, map) -> example`
    (which raises a one-line error naming the row for a map that is wrong, not unreadable). Unreadable
    files are skipped with a count (`strict`: an error), as for the other media tasks."""
    from tasktool.io.images import load_image
    from tasktool.io.kinds import IMAGE
    from tasktool.io.media import report_unreadable

    kept, bad = [], []
    for ex in examples:
        try:
            size = image_size(ex["path"])
            load_image(ex["path"]).close()  # decodes fully: a truncated file fails here, not mid-epoch
            values = load_map(ex["target"])
        except ItemError as exc:
            bad.append((ex, exc))
            continue
        if values.shape[:2] != (size[1], size[0]):
            raise TaskToolError(
                f"{ex['_where']}: {role} '{ex['target']}' is {values.shape[1]}x{values.shape[0]} but its image "
                f"'{ex['path']}' is {size[0]}x{size[1]}",
                f"each {role} must have its image's size (width x height)",
            )
        kept.append(check(ex, values))
    report_unreadable(bad, len(examples), IMAGE, split, strict)
    if not kept:
        raise TaskToolError(
            f"none of the {len(examples)} {split} examples can be read", "check the files and paths"
        )
    return kept
