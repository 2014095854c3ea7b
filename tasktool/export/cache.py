"""`--backend onnxruntime` on a torch model: export it once (O2, float32) into a cache folder, reuse it after.

The cache folder is named by a hash of the model folder's content (every file's name and bytes), the
task, the opset, tasktool's version and the graphs' revision: a model trained again, or another
tasktool, exports again.
It lives under $TASKTOOL_CACHE/onnx (default ~/.cache/tasktool/onnx); deleting it is always safe.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tasktool.errors import TaskToolError

LEVEL = "O2"  # float32 with the transformer fusions: the same labels as torch, checked at export


def cache_root() -> Path:
    base = Path(os.environ.get("TASKTOOL_CACHE", Path.home() / ".cache" / "tasktool")).expanduser()
    return base / "onnx"


def content_hash(folder: Path, *extra: str) -> str:
    """sha256 over the folder's files (relative names and bytes, in sorted order) and `extra` strings."""
    digest = hashlib.sha256()
    for part in extra:
        digest.update(part.encode() + b"\0")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue  # .cache/, .git/ and other tool folders are not the model
        digest.update(str(rel.as_posix()).encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 22), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def local_folder(ref: str, revision: str | None) -> Path:
    """The model's folder on disk: a local folder as it is; a Hub id through the Hub's own cache."""
    from tasktool import runtime

    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    with runtime.hub_errors(ref):
        return Path(
            snapshot_download(
                ref,
                revision=revision,
                allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.yaml", "*.tiktoken"],
            )
        )


def onnx_model_for(spec, opts) -> str:
    """The exported folder for opts.model (exported now if not in the cache yet)."""
    from tasktool import backends, runtime
    from tasktool.export.onnx import GRAPHS_REVISION, OPSET, check_supported, export_onnx

    check_supported(spec)
    ref = runtime.check_model_ref(opts.model)
    if backends.is_exported(ref):
        return ref
    folder = local_folder(ref, opts.revision)
    version = f"tasktool {backends.tasktool_version()}"
    key = content_hash(folder, spec.name, f"opset {OPSET}", version, LEVEL, GRAPHS_REVISION)
    target = cache_root() / key
    if backends.is_exported(target):
        return str(target)
    from tasktool.console import info

    info(f"exporting {opts.model} to ONNX once (cached in {target})")
    try:
        export_onnx(
            spec,
            str(folder),
            target,
            optimize=LEVEL,
            revision=None,
            trust_remote_code=opts.trust_remote_code,
            allow_pickle=opts.allow_pickle,
            strict=False,
        )
    except (TaskToolError, OSError):
        if backends.is_exported(target):  # another process exported it at the same time
            return str(target)
        raise
    return str(target)
