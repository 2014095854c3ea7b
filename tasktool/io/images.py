"""Image inputs: local files or URLs, opened lazily, decoded to RGB with EXIF orientation applied.

Opening reads only the header (size, format), so a window of thousands of inputs costs no pixel
memory; `ImageRef.load` decodes when the batch runs. Every failure is an ItemError of one line,
"cannot read image 'x.png': why", so one bad file fails alone.
"""

from __future__ import annotations

import io
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tasktool.errors import ItemError

if TYPE_CHECKING:
    from PIL import Image

URL_PREFIXES = ("http://", "https://")
DOWNLOAD_TIMEOUT_S = 30
MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024
# EXIF orientations 5-8 rotate by 90 degrees: width and height swap
_SWAPS = {5, 6, 7, 8}


def is_url(source: str) -> bool:
    return isinstance(source, str) and source.startswith(URL_PREFIXES)


def stem(source: str) -> str:
    """A file-name-safe stem for pictures derived from this input."""
    path = urllib.parse.urlparse(source).path if is_url(source) else str(source)
    name = Path(path).stem or "image"
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip("._")
    return safe[:80] or "image"


def _reason(exc: BaseException) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return "not an image file PIL can decode (unknown or damaged format)"
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "it is a folder"
    if isinstance(exc, PermissionError):
        return "permission denied"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def download(url: str) -> bytes:
    """The bytes at `url`; errors are one line naming the URL."""
    request = urllib.request.Request(url, headers={"User-Agent": "tasktool"})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read(MAX_DOWNLOAD_BYTES + 1)
    except Exception as exc:  # URLError, HTTPError, timeouts, resets: all mean "could not fetch"
        raise ItemError(
            f"cannot download image '{url}': {_reason(exc)}", "check the URL and the network"
        ) from exc
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise ItemError(f"cannot download image '{url}': larger than {MAX_DOWNLOAD_BYTES // 2**20} MB")
    return data


@dataclass
class ImageRef:
    """An input image known by its header: where it is, its displayed size, its position in the run."""

    source: str
    width: int
    height: int
    data: bytes | None = None  # downloaded bytes of a URL (compressed: small)
    index: int = 0

    @classmethod
    def open(cls, source) -> ImageRef:
        """Read the header only; empty, missing and non-image files fail here."""
        if isinstance(source, ImageRef):
            return source
        source = str(source)
        data = download(source) if is_url(source) else None
        if data is None:
            path = Path(source).expanduser()
            if path.is_file() and path.stat().st_size == 0:
                raise ItemError(f"cannot read image '{source}': the file is empty (0 bytes)")
        elif not data:
            raise ItemError(f"cannot read image '{source}': the download is empty (0 bytes)")
        image = _open(source, data)
        try:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
        except Exception as exc:
            raise ItemError(f"cannot read image '{source}': {_reason(exc)}") from exc
        finally:
            image.close()
        if orientation in _SWAPS:
            width, height = height, width
        return cls(source, width, height, data)

    def load(self) -> Image.Image:
        """Decode to an RGB PIL image, EXIF orientation applied."""
        return _decode(self.source, _open(self.source, self.data))


def _open(source: str, data: bytes | None):
    from PIL import Image

    try:
        return Image.open(io.BytesIO(data) if data is not None else Path(source).expanduser())
    except Exception as exc:
        raise ItemError(f"cannot read image '{source}': {_reason(exc)}") from exc


def _decode(source: str, image):
    from PIL import ImageOps

    try:
        with image:
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except ItemError:
        raise
    except Exception as exc:  # truncated data, bad CRCs, decoder errors
        raise ItemError(f"cannot read image '{source}': {_reason(exc)}") from exc


def _to_rgb(image):
    """RGB for every mode, including 16-bit and float greyscale that PIL's convert would clip."""
    if image.mode == "RGB":
        return image.copy()
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        import numpy as np
        from PIL import Image

        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
        image = Image.fromarray(scaled.astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        from PIL import Image

        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(path_or_url: str | Path) -> Image.Image:
    """A PIL RGB image from a path or URL, EXIF orientation applied; ItemError (one line) otherwise."""
    return ImageRef.open(path_or_url).load()
