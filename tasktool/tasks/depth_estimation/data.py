"""Labelled depth data: an image and a depth file per example (16-bit PNG, float TIFF or .npy; 0 = invalid).

Manifest columns `image` and `depth` (paths relative to the manifest), a folder with images/ and
depth/ (same file names), or a dataset with image and depth columns. `depth_scale` turns the stored
values into metres.
"""

from __future__ import annotations

from tasktool.errors import TaskToolError
from tasktool.tasks.pixel_maps import MapReader, load_map, single_channel


class Reader(MapReader):
    target_role = "depth file"
    target_columns = ("depth", "depth_map", "depth_file", "depth_path", "depth_image")
    target_folders = ("depth", "depths", "depth_maps")

    @property
    def scale(self) -> float:
        scale = self.recipe.get("depth_scale")
        scale = 1.0 if scale is None else float(scale)
        if scale <= 0:
            raise TaskToolError(
                f"depth_scale must be above 0, got {scale:g}", "e.g. --depth-scale 0.001 for millimetres"
            )
        return scale

    def depth(self, example: dict, values=None):
        """The example's depth in metres, float32 (h, w); 0 where invalid (also NaN and negative values)."""
        import numpy as np

        values = load_map(example["target"]) if values is None else values
        values = single_channel(values, example["_where"], example["target"], "depth file").astype(np.float32)
        values = np.where(np.isfinite(values) & (values > 0), values, 0.0).astype(np.float32)
        return values * np.float32(self.scale)

    def check(self, example: dict, values) -> dict:
        """A one-line error for a depth file with several channels (an RGB picture of depth, say)."""
        self.depth(example, values)
        return example
