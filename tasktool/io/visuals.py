"""Pictures of vision results, for people who would rather look than read JSON.

Boxes drawn on the image, a colour overlay of segments with a legend, a colour-mapped value map
(`heatmap`); raw id masks (PNG) and float arrays (NPY) for programs. PIL and numpy only.
Every file is written to a temporary name and renamed, so a file that exists is complete.
"""

from __future__ import annotations

import colorsys
import contextlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

# "turbo"-like anchors (dark blue -> cyan -> green -> yellow -> red): readable, no matplotlib needed
_COLORMAP = np.array(
    [
        [48, 18, 59],
        [70, 107, 227],
        [40, 187, 236],
        [49, 242, 153],
        [162, 252, 60],
        [237, 208, 58],
        [251, 128, 34],
        [208, 47, 5],
        [122, 4, 3],
    ],
    dtype=np.float64,
)


def color(key: int) -> tuple[int, int, int]:
    """A distinct, saturated colour per integer key (golden-ratio hue steps)."""
    hue = (key * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def colormap(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB uint8 with a built-in perceptual-ish colormap."""
    values = np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0)
    stops = np.linspace(0.0, 1.0, len(_COLORMAP))
    channels = [np.interp(values, stops, _COLORMAP[:, c]) for c in range(3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _label_size(image_size: tuple[int, int]) -> int:
    return max(8, min(24, round(min(image_size) / 30)))


def draw_boxes(image: Image.Image, objects: list[dict]) -> Image.Image:
    """The image with each object's box and 'label score' tag; colours follow the label."""
    from PIL import ImageDraw

    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    font = _font(_label_size(canvas.size))
    width = max(1, round(min(canvas.size) / 200))
    for obj in objects:
        box = obj["box"]
        xy = (box["xmin"], box["ymin"], box["xmax"], box["ymax"])
        rgb = color(_key(obj["label"]))
        draw.rectangle(xy, outline=rgb, width=width)
        text = f"{obj['label']} {obj['score']:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left, bottom - top
        x = min(max(0, xy[0]), max(0, canvas.width - tw - 2))
        y = xy[1] - th - 2 if xy[1] - th - 2 >= 0 else xy[1]
        draw.rectangle((x, y, x + tw + 2, y + th + 2), fill=rgb)
        draw.text((x + 1 - left, y + 1 - top), text, fill=_ink(rgb), font=font)
    return canvas


def overlay_segments(
    image: Image.Image, segmentation: np.ndarray, segments: list[dict], alpha: float = 0.55
) -> Image.Image:
    """The image with each segment tinted in its colour, and a legend (colour, label, score) top-left."""
    from PIL import Image, ImageDraw

    base = np.asarray(image.convert("RGB"), dtype=np.float64)
    tint = base.copy()
    covered = np.zeros(segmentation.shape, dtype=bool)
    for seg in segments:
        mask = segmentation == seg["id"]
        tint[mask] = color(seg["id"])
        covered |= mask
    blended = np.where(covered[..., None], base * (1 - alpha) + tint * alpha, base)
    canvas = Image.fromarray(blended.round().astype(np.uint8), "RGB")
    if segments:
        draw = ImageDraw.Draw(canvas, "RGBA")
        font = _font(_label_size(canvas.size))
        lines = [
            (color(s["id"]), f"{s['label']} {s['score']:.2f}" if s.get("score") is not None else s["label"])
            for s in segments
        ]
        heights = [draw.textbbox((0, 0), text, font=font)[3] for _, text in lines]
        row = max(heights) + 4
        swatch = row - 4
        widths = [draw.textlength(text, font=font) for _, text in lines]
        legend_w = min(canvas.width, int(max(widths)) + swatch + 10)
        legend_h = min(canvas.height, row * len(lines) + 4)
        draw.rectangle((0, 0, legend_w, legend_h), fill=(0, 0, 0, 170))
        for i, (rgb, text) in enumerate(lines):
            y = 2 + i * row
            if y >= canvas.height:
                break
            draw.rectangle((3, y + 2, 3 + swatch, y + 2 + swatch), fill=rgb)
            draw.text((swatch + 7, y), text, fill=(255, 255, 255), font=font)
    return canvas


def heatmap(values: np.ndarray) -> Image.Image:
    """A colour-mapped map of per-pixel values: low is dark blue, high is red (min-max scaled per image)."""
    from PIL import Image

    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    low = float(values[finite].min()) if finite.any() else 0.0
    high = float(values[finite].max()) if finite.any() else 0.0
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return Image.fromarray(colormap(scaled), "RGB")


def _ink(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white text, whichever reads better on `rgb`."""
    return (0, 0, 0) if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 150 else (255, 255, 255)


def _key(label) -> int:
    import zlib

    return zlib.crc32(str(label).encode("utf-8"))


# ---------------------------------------------------------------- files


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def save_png(image: Image.Image, path: Path) -> Path:
    return _atomic(path, lambda fh: image.save(fh, format="PNG"))


def save_mask(segmentation: np.ndarray, path: Path) -> Path:
    """Segment ids as a greyscale PNG: 8-bit when ids fit, 16-bit otherwise (0 = no segment)."""
    from PIL import Image

    ids = np.clip(np.asarray(segmentation), 0, 65535)
    if ids.max(initial=0) < 256:
        image = Image.fromarray(ids.astype(np.uint8), "L")
    else:
        image = Image.fromarray(ids.astype(np.uint16), "I;16")
    return save_png(image, path)


def save_npy(array: np.ndarray, path: Path) -> Path:
    return _atomic(path, lambda fh: np.save(fh, np.asarray(array)))
