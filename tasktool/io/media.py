"""Media inputs: paths, folders (every supported file inside, sorted), globs, URLs and manifests.

For infer, payloads are path strings (or URLs); decoding happens per item in the task's `prepare`,
so a corrupt file fails alone (see io/audio.py and io/images.py). For finetune and evaluate,
`read_examples` turns a folder of class sub-folders, a metadata file, a manifest or a dataset into
labelled examples {"path", target, "_where"}.
"""

from __future__ import annotations

import glob
import hashlib
import os
from pathlib import Path

from tasktool.errors import TaskToolError
from tasktool.io.columns import field, pick
from tasktool.io.kinds import AUDIO
from tasktool.io.readers import Source, dataset_rows, is_saved_dataset, path_like, read_rows

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
ALLOW_FLAG = "--allow-absolute-paths"
METADATA_FILES = ("metadata.csv", "metadata.jsonl", "metadata.tsv", "metadata.json", "metadata.parquet")
MANIFEST_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet")
# files a model folder or a run's output holds, and a class folder of media never does
MODEL_MARKERS = ("config.json", "metrics.json", "model.safetensors", "train_log.jsonl")
PATH_COLUMNS = (
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


# target -> (its name in messages, its column flag, default column names)
TARGETS = {
    "label": (
        "label",
        "--label-column",
        ("label", "labels", "class", "category", "target", "fine_label", "intent"),
    ),
    "text": (
        "transcription",
        "--transcription-column",
        ("transcription", "text", "sentence", "transcript", "normalized_text", "raw_transcription"),
    ),
}


def suffixes_for(kind: str) -> tuple[str, ...]:
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


def manifest_path(value: str, base: Path, where: str, allow_outside: bool = False) -> str:
    """A manifest's file entry, resolved against the manifest's folder.

    A shared manifest must not reach files outside its own folder (`../../etc/passwd`, `/home/...`):
    absolute paths, `..` that climb out, and symlinks that lead out (paths are compared after
    `realpath`) are refused unless the user passes --allow-absolute-paths.
    URLs pass through (they are fetched, not read from disk).
    """
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
    joined = os.path.realpath(base / path)
    root = os.path.realpath(base)
    if not allow_outside and os.path.commonpath([root, joined]) != root:
        raise TaskToolError(
            f"{where}: path '{value}' points outside the manifest's folder '{base}'",
            f"keep the files under that folder, or pass {ALLOW_FLAG} to allow it",
        )
    return str(base / path)


def download_to_temp(url: str, timeout: float = 60.0) -> str:
    """Fetch an http(s) media URL into a temporary file (same suffix); the caller removes it."""
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


# ---------------------------------------------------------------------- labelled examples


def read_examples(
    source: Source,
    kind: str,
    target: str,
    path_column: str | None = None,
    target_column: str | None = None,
    allow_outside: bool = False,
) -> list[dict]:
    """All labelled examples of one split: {"path", target: its value, "_where": its row}; `target` is
    "label" (classification) or "text" (a transcription).

    A folder is a saved dataset, a folder with a metadata file, or (target "label") one sub-folder
    per label. Manifest paths stay inside the manifest's folder unless `allow_outside`.
    """
    path = Path(source.path).expanduser()
    if path.is_dir():
        if is_saved_dataset(path):
            rows, base = dataset_rows(str(path), source.split or "train", source.config), path
            allow_outside = True  # a saved dataset, not a hand-written manifest: its paths are its own
        elif meta := next((path / m for m in METADATA_FILES if (path / m).exists()), None):
            rows, base = _manifest_rows(meta, source.delimiter), path
        elif target == "label":
            return _label_folders(path, kind, source)
        else:
            raise TaskToolError(
                f"folder '{source.path}' has no metadata.csv or metadata.jsonl",
                f"add one with a file_name and a {TARGETS[target][0]} column",
            )
    elif path.is_file():
        if path.suffix.lower() not in MANIFEST_SUFFIXES:
            raise TaskToolError(
                f"'{source.path}' is not a folder or a manifest",
                f"give a {kind} folder, or a .csv/.jsonl file with a path column",
            )
        rows, base = _manifest_rows(path, source.delimiter), path.parent
        allow_outside = allow_outside or _held_out_split(path)
    elif source.split or not path_like(source.path):
        rows, base = dataset_rows(source.path, source.split or "train", source.config), None
    else:
        raise TaskToolError(f"data '{source.path}' not found", "check the path given to --data/--eval-data")
    if not rows:
        raise TaskToolError(f"'{source.name}' holds no rows", "give at least one example")
    path_col = pick(rows[0], path_column, PATH_COLUMNS, f"{kind} path", "--path-column")
    role, flag, defaults = TARGETS[target]
    target_col = pick(rows[0], target_column, defaults, role, flag)
    return [
        _example(row, path_col, target_col, base, f"{source.name}, row {n + 1}", target, role, allow_outside)
        for n, row in enumerate(rows)
    ]


def _held_out_split(path: Path) -> bool:
    """The held-out split a fine-tuning run of THIS user saved next to its model.

    Its paths are those of the training data, wherever that lives, so `tasktool evaluate` on it
    works without --allow-absolute-paths. No file beside a manifest can switch the check off: the
    run records an HMAC of the split's bytes in metrics.json, keyed with a secret that never leaves
    this user's cache folder (`trust.key`, mode 0600), so a manifest someone else wrote (or edited
    since) is checked like any other. A model folder copied from another machine needs the flag.
    """
    import hmac
    import json

    try:
        summary = json.loads((path.parent / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(summary, dict) or summary.get("eval_data") != path.name:
        return False
    claimed = summary.get("eval_data_signature")
    expected = sign_held_out(path, create_key=False)
    return isinstance(claimed, str) and expected is not None and hmac.compare_digest(claimed, expected)


def _trust_key(create: bool) -> bytes | None:
    """This user's secret for signing held-out splits (created once, readable by the user alone)."""
    key_path = media_cache().parent / "trust.key"
    try:
        return bytes.fromhex(key_path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        if not create:
            return None
    try:
        key_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(os.urandom(32).hex() + "\n")
    except FileExistsError:
        pass  # another run created it first
    except OSError:
        return None
    try:
        return bytes.fromhex(key_path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def sign_held_out(path: Path, create_key: bool = True) -> str | None:
    """The HMAC-SHA256 of a held-out split's bytes under this user's key (None: no key available)."""
    import hmac

    key = _trust_key(create_key)
    if key is None:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return hmac.new(key, b"tasktool held-out split\0" + data, hashlib.sha256).hexdigest()


def is_held_out_split(path: Path) -> bool:
    """Public name of the check above, for readers of other labelled-file layouts."""
    return _held_out_split(Path(path))


def _manifest_rows(path: Path, delimiter: str | None = None) -> list[dict]:
    rows = list(read_rows(path, delimiter=delimiter))
    if any(not isinstance(r, dict) for r in rows):
        raise TaskToolError(
            f"'{path}' must hold rows with named columns", "use a .csv header or JSON objects"
        )
    return rows


def _label_folders(folder: Path, kind: str, source: Source) -> list[dict]:
    """One sub-folder per label; every media file inside it (recursively) is an example."""
    examples = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        marker = next((sub / m for m in MODEL_MARKERS if (sub / m).is_file()), None)
        if marker is not None:  # e.g. an --output-dir put inside the data: its pictures are no class
            raise TaskToolError(
                f"'{sub}' holds a model or run output ({marker.name}), not {kind} files of a label",
                f"move it out of '{source.path}': every sub-folder there is read as a label",
            )
        files = sorted(p for p in sub.rglob("*") if p.is_file() and p.suffix.lower() in suffixes_for(kind))
        examples += [
            {"path": str(f), "label": sub.name, "_where": f"{source.name}: {sub.name}/{f.name}"}
            for f in files
        ]
    if not examples:
        raise TaskToolError(
            f"folder '{source.path}' holds no labelled {kind} files",
            f"put the files in one sub-folder per label ({', '.join(suffixes_for(kind))}), "
            "or add a metadata.csv with file_name and label columns",
        )
    return examples


def _example(
    row: dict, path_col: str, target_col: str, base, where: str, target: str, role: str, allow_outside: bool
):
    value = field(row, path_col)
    from_dataset = isinstance(value, dict)  # datasets' {"path", "bytes"}: a file it wrote itself
    if from_dataset:
        value = materialise(value)
    if value is None or not str(value).strip():
        raise TaskToolError(f"{where}: no file in column '{path_col}'", "every row needs a file")
    value = str(value).strip()
    if base is not None and not from_dataset:
        value = manifest_path(value, base, where, allow_outside)
    raw = field(row, target_col)
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    text = "" if raw is None else str(raw).strip()
    if not text:
        raise TaskToolError(f"{where}: empty {role} in column '{target_col}'", f"every row needs a {role}")
    return {"path": value, target: text, "_where": where}


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


def report_unreadable(bad: list, total: int, kind: str, split: str, strict: bool) -> None:
    """Unreadable files of a split (`bad`: (example, ItemError) pairs): an error with `strict`, else one
    warning that counts them."""
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
