"""A request's inputs -> the engine's Items, in the forms `tasktool infer` reads.

Text and question+context inputs go through io.inputs exactly as a file's rows do (a string, or an
object whose text/question/context columns are picked the same way; an `id` field is kept). Media
travels over HTTP as bytes: base64 (or a `data:` URI), an http(s) URL, or a multipart upload. The bytes
are written to a temporary file that the predictor reads like a path, and removed after the answer;
a file path on the server itself is never read on a client's word.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import itertools
import mimetypes
import os
import tempfile
from pathlib import Path

from tasktool.errors import TaskToolError
from tasktool.io.inputs import InputSpec, items_for
from tasktool.io.kinds import AUDIO, IMAGE, PAIR
from tasktool.io.records import Item


class BadRequest(TaskToolError):
    """A request the client must fix: answered with `status` and {"error": message}."""

    def __init__(self, message: str, status: int = 422, hint: str | None = None):
        super().__init__(message, hint)
        self.status = status


MEDIA_KEYS = ("base64", "data", "url")
_AUDIO_MAGIC = (
    (b"RIFF", ".wav"),
    (b"fLaC", ".flac"),
    (b"OggS", ".ogg"),
    (b"ID3", ".mp3"),
    (b"FORM", ".aiff"),
)


def _json_type(value) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


class Uploads:
    """The temporary files of one request; `scrub` puts the client's names back into error messages."""

    def __init__(self, folder: str | Path):
        self.folder = str(folder)
        self.names: dict[str, str] = {}  # temporary path -> what the client called it

    def write(self, data: bytes, shown: str, suffix: str = "") -> str:
        fd, path = tempfile.mkstemp(prefix="in-", suffix=suffix[:12], dir=self.folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        self.names[path] = shown
        return path

    def cleanup(self) -> None:
        for path in self.names:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def scrub(self, text: str) -> str:
        for path, shown in self.names.items():
            text = text.replace(path, shown).replace(os.path.basename(path), shown)
        return text


def check_inputs(inputs, max_inputs: int) -> list:
    if inputs is None:
        raise BadRequest('missing "inputs"', hint='send {"inputs": ["...", ...]}')
    if isinstance(inputs, (str, dict)):
        inputs = [inputs]
    if not isinstance(inputs, list):
        raise BadRequest(f'"inputs" must be a list, got {_json_type(inputs)}')
    if not inputs:
        raise BadRequest('"inputs" is empty', hint="send at least one input")
    if len(inputs) > max_inputs:
        raise BadRequest(
            f"too many inputs: {len(inputs)} (at most {max_inputs} a request)",
            status=413,
            hint="split them over several requests",
        )
    for n, value in enumerate(inputs):
        if not isinstance(value, (str, dict)):
            raise BadRequest(f"inputs[{n}]: expected a string or an object, got {_json_type(value)}")
    return inputs


def text_items(kind: str, inputs: list, column=None, question=None, context=None) -> list[Item]:
    """Text or question+context inputs, read by io.inputs as `tasktool infer` reads rows."""
    for name, value in (("column", column), ("question", question), ("context", context)):
        if value is not None and not isinstance(value, str):
            raise BadRequest(f'"{name}" must be a string, got {_json_type(value)}')
    if kind != PAIR and (question or context):
        raise BadRequest('"question" and "context" are for question-answering models')
    if question and context:
        raise BadRequest('give "question" or "context" with the inputs, not both')
    spec = InputSpec(rows=inputs, column=column, question=question, context=context)
    try:
        return list(items_for(kind, spec))
    except BadRequest:
        raise
    except TaskToolError as exc:
        raise BadRequest(exc.one_line().replace("--column", '"column"')) from exc


def _decode_base64(text: str, where: str) -> bytes:
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(
            f"{where}: not base64, a data: URI or an http(s) URL",
            hint="send the file's bytes base64-encoded; paths on the server are not read",
        ) from None


def _suffix(kind: str, name: str | None, mime: str | None, data: bytes) -> str:
    if name and Path(name).suffix:
        return Path(name).suffix.lower()
    if mime:
        guessed = mimetypes.guess_extension(mime.split(";")[0].strip())
        if guessed:
            return guessed
    if kind == AUDIO:
        for magic, suffix in _AUDIO_MAGIC:
            if data.startswith(magic):
                return suffix
        if data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
            return ".mp3"
    return ""


def media_item(kind: str, value, n: int, uploads: Uploads, allow_urls: bool) -> Item:
    """One media input: a string (base64, data: URI or URL) or {"base64"|"data"|"url": ..., "name", "id"}."""
    where, given, name = f"inputs[{n}]", None, None
    if isinstance(value, dict):
        given, name = value.get("id"), value.get("name")
        keys = [k for k in (*MEDIA_KEYS, kind) if k in value]
        if len(keys) != 1:
            raise BadRequest(
                f"{where}: give the {kind} as exactly one of "
                + ", ".join(f'"{k}"' for k in (*MEDIA_KEYS, kind)),
                hint='e.g. {"base64": "...", "name": "clip.wav"} or {"url": "https://..."}',
            )
        value = value[keys[0]]
        if not isinstance(value, str):
            raise BadRequest(f"{where}: expected a string, got {_json_type(value)}")
    item_id = n if given is None else given
    if value.startswith(("http://", "https://")):
        if not allow_urls:
            raise BadRequest(f"{where}: URL inputs are turned off on this server", hint="send the bytes")
        return Item(item_id, value)
    mime = None
    if value.startswith("data:"):
        header, sep, value = value.partition(",")
        if not sep or ";base64" not in header:
            raise BadRequest(f"{where}: a data: URI must be base64 (data:TYPE;base64,...)")
        mime = header[5:].split(";")[0] or None
    data = _decode_base64(value, where)
    shown = str(name) if name else f"{kind} #{n} ({len(data)} bytes)"
    path = uploads.write(data, shown, _suffix(kind, name, mime, data))
    return Item(item_id, path, display=shown)


def media_items(kind: str, inputs: list, uploads: Uploads, allow_urls: bool) -> list[Item]:
    return [media_item(kind, value, n, uploads, allow_urls) for n, value in enumerate(inputs)]


def json_items(kind: str, body, uploads: Uploads, max_inputs: int, allow_urls: bool) -> list[Item]:
    """The items of a JSON request body {"inputs": [...], "column"?, "question"?, "context"?}."""
    if not isinstance(body, dict):
        raise BadRequest(f'the body must be a JSON object with "inputs", got {_json_type(body)}')
    inputs = check_inputs(body.get("inputs"), max_inputs)
    if kind in (AUDIO, IMAGE):
        return media_items(kind, inputs, uploads, allow_urls)
    return text_items(kind, inputs, body.get("column"), body.get("question"), body.get("context"))


def upload_items(
    kind: str,
    files: list[tuple[str, bytes]],
    fields: list[str],
    uploads: Uploads,
    max_inputs: int,
    allow_urls,
) -> list[Item]:
    """The items of a multipart request: media files (one input each), or for text tasks one file read
    like `--file` (.txt/.jsonl/.json/.csv/.tsv) or `inputs` text fields."""
    if kind in (AUDIO, IMAGE):
        count = len(files) + len(fields)
        if not count:
            raise BadRequest("the form holds no files", hint=f"attach {kind} files, e.g. curl -F file=@x")
        if count > max_inputs:
            raise BadRequest(f"too many inputs: {count} (at most {max_inputs} a request)", status=413)
        items = []
        for n, (filename, data) in enumerate(files):
            shown = filename or f"{kind} #{n}"
            path = uploads.write(data, shown, _suffix(kind, filename, None, data))
            items.append(Item(n, path, display=shown))
        for n, value in enumerate(fields, start=len(files)):
            items.append(media_item(kind, value, n, uploads, allow_urls))
        return items
    if files and fields:
        raise BadRequest("give text inputs one way: a file or `inputs` fields", hint="not both")
    if not files:
        return text_items(kind, check_inputs(fields, max_inputs))
    if len(files) > 1:
        raise BadRequest("attach one input file", hint="or send several requests")
    filename, data = files[0]
    path = uploads.write(data, filename or "upload", Path(filename or "upload.txt").suffix.lower() or ".txt")
    spec = InputSpec(file=path)
    try:
        items = list(itertools.islice(items_for(kind, spec), max_inputs + 1))
    except TaskToolError as exc:
        raise BadRequest(uploads.scrub(exc.one_line())) from exc
    if not items:
        raise BadRequest(f"'{filename}' holds no inputs")
    if len(items) > max_inputs:
        raise BadRequest(f"'{filename}' holds more than {max_inputs} inputs", status=413)
    return items
