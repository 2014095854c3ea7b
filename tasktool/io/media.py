"""Media inputs: paths, folders (every supported file inside, sorted), globs, URLs, manifests.

Payloads are path strings (or URLs); decoding happens per item in the task's `prepare`, so a
corrupt file fails alone (see io/audio.py and io/images.py).
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

from tasktool.engine import Item
from tasktool.errors import TaskToolError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def suffixes_for(kind: str) -> tuple[str, ...]:
    from tasktool.tasks.registry import AUDIO

    return AUDIO_SUFFIXES if kind == AUDIO else IMAGE_SUFFIXES


def expand(arg: str, kind: str) -> list[str]:
    """One command-line argument -> the media paths it names."""
    if arg.startswith(("http://", "https://")):
        return [arg]
    path = Path(arg).expanduser()
    if path.is_dir():
        found = sorted(
            str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes_for(kind)
        )
        if not found:
            raise TaskToolError(
                f"folder '{arg}' holds no {kind} files", f"supported: {', '.join(suffixes_for(kind))}"
            )
        return found
    if any(ch in arg for ch in "*?["):
        found = sorted(glob.glob(arg, recursive=True))
        if not found:
            raise TaskToolError(
                f"pattern '{arg}' matches no files", "check the pattern (quote it in the shell)"
            )
        return found
    if not path.exists():
        raise TaskToolError(f"input file '{arg}' not found", "check the path")
    return [str(path)]


ALLOW_FLAG = "--allow-absolute-paths"


def manifest_path(value: str, base: Path, where: str, allow_outside: bool = False) -> str:
    """A manifest's file entry, resolved against the manifest's folder.

    A shared manifest must not reach files outside its own folder (`../../etc/passwd`, `/home/...`):
    absolute paths and `..` that climb out are refused unless the user passes --allow-absolute-paths.
    URLs pass through (they are fetched, not read from disk).
    """
    import os

    if value.startswith(("http://", "https://")):
        return value
    path = Path(value).expanduser() if value.startswith("~") else Path(value)
    if path.is_absolute():
        if not allow_outside:
            raise TaskToolError(
                f"{where}: absolute path '{value}' in a manifest",
                f"give paths relative to '{base}', or pass {ALLOW_FLAG} to allow it",
            )
        return str(path)
    joined = os.path.normpath(base / path)
    root = os.path.normpath(base)
    if not allow_outside and os.path.commonpath([root, joined]) != root:
        raise TaskToolError(
            f"{where}: path '{value}' points outside the manifest's folder '{base}'",
            f"keep the files under that folder, or pass {ALLOW_FLAG} to allow it",
        )
    return str(base / path)


def media_items(kind: str, spec) -> Iterator[Item]:
    """Items whose payload is a path or URL, from arguments, a manifest file, or a dataset column."""
    from tasktool.io.readers import PATH_COLUMNS, get_field, pick_column, raw_rows, read_rows

    n = 0
    if spec.file:
        base = Path(spec.file).parent
        column = None
        for row in read_rows(spec.file, spec.fmt):
            if isinstance(row, dict):
                column = column or pick_column(row, spec.column, PATH_COLUMNS, "path")
                value = get_field(row, column)
                given = row.get("id")
            else:
                value, given = row, None
            if isinstance(value, dict) and "path" in value:  # datasets' Audio/Image(decode=False)
                value = value["path"]
            value = manifest_path(
                str(value),
                base,
                f"{spec.file}, row {n + 1}",
                getattr(spec, "allow_absolute_paths", False),
            )
            yield Item(n if given is None else given, value)
            n += 1
        return
    if spec.dataset:
        column = None
        for given, row in raw_rows(spec):
            column = column or pick_column(row, spec.column, PATH_COLUMNS, "path")
            value = get_field(row, column)
            if isinstance(value, dict):
                value = value.get("path") or value
            yield Item(n if given is None else given, value)
            n += 1
        return
    for arg in spec.texts:
        for path in expand(arg, kind):
            yield Item(n, path)
            n += 1


def download_to_temp(url: str, timeout: float = 60.0) -> str:
    """Fetch an http(s) media URL into a temporary file (same suffix); the caller removes it."""
    import os
    import shutil
    import tempfile
    import urllib.error
    import urllib.parse
    import urllib.request

    from tasktool.errors import ItemError

    suffix = Path(urllib.parse.urlparse(url).path).suffix[:8]
    fd, tmp = tempfile.mkstemp(prefix="tasktool-", suffix=suffix)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "tasktool"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        os.unlink(tmp)
        reason = getattr(exc, "reason", None) or exc
        raise ItemError(f"cannot download '{url}': {reason}", "check the URL and your connection") from exc
    return tmp
