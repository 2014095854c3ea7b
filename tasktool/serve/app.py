"""The FastAPI app: /v1/infer (the records `tasktool infer` writes), /health, /v1/info, and an
OpenAI-compatible /v1/chat/completions where the predictor has chat support.

Every error is JSON {"error": "one line"} with a 4xx/5xx status, never a traceback; the model runs on
the batcher's worker thread, so no handler blocks the event loop on it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from contextlib import asynccontextmanager
from dataclasses import asdict

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from tasktool.errors import TaskToolError
from tasktool.io.kinds import AUDIO, IMAGE
from tasktool.io.records import to_jsonable
from tasktool.serve import chat as C
from tasktool.serve.batcher import Batcher, Overloaded
from tasktool.serve.inputs import BadRequest, Uploads, json_items, upload_items
from tasktool.serve.limits import Counters, Guard, Limits

INLINE_BODY_BYTES = 64 * 1024  # larger bodies are parsed off the event loop

_INFER_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["inputs"],
                "properties": {
                    "inputs": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "object"}]},
                        "description": "Texts; {question, context} objects; for audio/image models "
                        "base64 strings, data: URIs, URLs or {base64|url, name, id} objects.",
                    },
                    "column": {"type": "string", "description": "Column of object inputs holding the text."},
                    "question": {"type": "string", "description": "QA: one question for every context."},
                    "context": {"type": "string", "description": "QA: one context for every question."},
                },
            },
            "example": {"inputs": ["What a great film", "Dull and too long"]},
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    "inputs": {"type": "array", "items": {"type": "string"}},
                },
            }
        },
    },
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tasktool")
    except PackageNotFoundError:
        return "unknown"


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _labels(spec, predictor) -> list[str] | None:
    if not any(word in spec.model_class for word in ("Classification", "Detection", "Segmentation")):
        return None
    config = getattr(getattr(predictor, "model", None), "config", None)
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label[k]) for k in sorted(id2label, key=int)] or None


def create_app(
    spec,
    opts,
    predictor,
    limits: Limits | None = None,
    *,
    max_batch_size: int = 32,
    max_batch_tokens: int | None = None,
    max_wait_ms: float = 5.0,
    workers: int | None = 1,
    drain_timeout_s: float = 5.0,
) -> FastAPI:
    limits = limits or Limits()
    batcher = Batcher(
        predictor,
        max_batch_size=max_batch_size,
        max_batch_tokens=max_batch_tokens,
        max_wait_ms=max_wait_ms,
        workers=workers,
        max_queue=limits.max_queue,
    )
    counters = Counters()
    folder = tempfile.mkdtemp(prefix="tasktool-serve-")
    chat_ok = C.has_chat(predictor)
    model_name = str(opts.model)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        try:
            yield
        finally:
            batcher.close(drain_timeout_s)  # uvicorn has let the in-flight requests finish first
            shutil.rmtree(folder, ignore_errors=True)

    app = FastAPI(
        title=f"tasktool serve: {spec.name}",
        version=_version(),
        description=f"{spec.summary}. Model: `{model_name}`. Records as `tasktool infer` writes them.",
        lifespan=lifespan,
    )
    app.state.batcher, app.state.counters, app.state.limits = batcher, counters, limits

    @app.exception_handler(HTTPException)
    async def _http(request, exc: HTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "invalid JSON body")
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request")

    @app.exception_handler(ApiError)
    async def _api(request, exc: ApiError):
        return _error(exc.status, exc.message)

    @app.exception_handler(BadRequest)
    async def _bad(request, exc: BadRequest):
        return _error(exc.status, exc.one_line())

    @app.exception_handler(Overloaded)
    async def _busy(request, exc: Overloaded):
        return JSONResponse({"error": exc.one_line()}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def _crash(request, exc: Exception):
        text = " ".join(str(exc).split())[:300]
        return _error(500, f"internal error: {type(exc).__name__}: {text}")

    @app.get("/health", summary="200 once the model is loaded; queue and batch counters")
    async def health():
        stats = batcher.stats
        return {
            "status": "ok",
            "task": spec.name,
            "model": model_name,
            "in_flight": max(counters.in_flight - 1, 0),  # not counting this request
            "queued_inputs": batcher.queued,
            "requests": stats.requests,
            "batches": stats.batches,
            "largest_batch": stats.largest,
        }

    @app.get("/v1/info", summary="Task, model, labels, options and limits")
    async def info():
        options = {k: v for k, v in asdict(opts).items() if k != "extra"}
        return {
            "task": spec.name,
            "summary": spec.summary,
            "model": model_name,
            "input_kind": spec.input_kind,
            "labels": _labels(spec, predictor),
            "options": to_jsonable(options),
            "batching": {
                "max_batch_size": max_batch_size,
                "max_batch_tokens": max_batch_tokens,
                "max_wait_ms": max_wait_ms,
            },
            "limits": limits.public(),
            "chat": chat_ok,
            "version": _version(),
        }

    async def run(work, timeout_what: str):
        try:
            return await asyncio.wait_for(work, limits.timeout_s)
        except asyncio.TimeoutError:  # TimeoutError from 3.11 on
            raise ApiError(
                503, f"{timeout_what} timed out after {limits.timeout_s:g} s (the server is busy; retry)"
            ) from None

    @app.post(
        "/v1/infer",
        summary="Run the model on inputs; one record per input, as `tasktool infer` writes them",
        openapi_extra={"requestBody": _INFER_BODY},
    )
    async def infer(request: Request):
        uploads = Uploads(folder)
        try:
            items = await _items(request, uploads)
            try:
                records = await run(batcher.infer(items), "the request")
            except TaskToolError as exc:
                if isinstance(exc, Overloaded):
                    raise
                raise BadRequest(uploads.scrub(exc.one_line())) from exc
        finally:
            uploads.cleanup()
        records = [to_jsonable(r) for r in records]
        for record in records:
            if "error" in record:
                record["error"] = uploads.scrub(record["error"])
        failed = [r for r in records if "error" in r]
        if failed and len(failed) == len(records):
            message = failed[0]["error"] if len(records) == 1 else f"all {len(records)} inputs failed"
            return _error(422, message, records=records)
        return JSONResponse({"records": records})

    async def _items(request: Request, uploads: Uploads):
        kind = spec.input_kind
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            form = await request.form(
                max_files=limits.max_inputs,
                max_fields=limits.max_inputs + 8,
                max_part_size=limits.max_body_bytes,  # a base64 field may be as big as the body may
            )
            files, fields = [], []
            for key, value in form.multi_items():
                if isinstance(value, str):
                    if key != "inputs":
                        raise BadRequest(f"unknown form field '{key}'", hint="use 'inputs' or attach files")
                    fields.append(value)
                else:
                    files.append((value.filename or "", await value.read()))
            await form.close()
            return await asyncio.to_thread(
                upload_items, kind, files, fields, uploads, limits.max_inputs, limits.allow_urls
            )
        raw = await request.body()
        if not raw.strip():
            raise ApiError(400, 'empty body: send JSON {"inputs": [...]} or a multipart form')
        if len(raw) <= INLINE_BODY_BYTES and kind not in (AUDIO, IMAGE):
            return _parse(raw, kind, uploads)
        return await asyncio.to_thread(_parse, raw, kind, uploads)

    def _parse(raw: bytes, kind: str, uploads: Uploads):
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"invalid JSON body: {exc}") from None
        return json_items(kind, body, uploads, limits.max_inputs, limits.allow_urls)

    @app.get("/v1/models", summary="The served model, as OpenAI clients list it")
    async def models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "tasktool"}]}

    @app.post(
        "/v1/chat/completions",
        summary="OpenAI-compatible chat (models whose predictor has chat support)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": C.ChatRequest.model_json_schema()}},
            }
        },
    )
    async def chat_completions(http: Request):
        if not chat_ok:
            raise ApiError(
                501,
                f"this model/task has no chat support yet ({spec.name}, {model_name}); use POST /v1/infer",
            )
        request = C.parse_request(await http.body())
        messages, options = C.messages_of(request), C.options_of(request)
        reply_model = request.model or model_name
        if not request.stream:
            try:
                reply = await run(
                    batcher.call(lambda: predictor.chat(messages, **options)), "the chat request"
                )
            except TaskToolError as exc:
                if isinstance(exc, Overloaded):
                    raise
                raise BadRequest(exc.one_line()) from exc
            return C.completion(reply_model, reply)

        def make():
            streamer = getattr(predictor, "chat_stream", None)
            if callable(streamer):
                return streamer(messages, **options)
            reply = predictor.chat(messages, **options)  # no streaming: the whole reply as one piece
            return [reply.get("text", "") if isinstance(reply, dict) else reply]

        pieces = batcher.stream(make, limits.timeout_s)
        try:  # the first piece before the 200: a bad conversation still gets its 4xx
            first = await pieces.__anext__()
        except StopAsyncIteration:
            first = None
        except asyncio.TimeoutError:  # TimeoutError from 3.11 on
            await pieces.aclose()
            raise ApiError(503, f"the chat request timed out after {limits.timeout_s:g} s") from None
        except TaskToolError as exc:
            await pieces.aclose()
            if isinstance(exc, Overloaded):
                raise
            raise BadRequest(exc.one_line()) from exc

        async def events():
            sse = C.ChunkStream(reply_model)
            yield sse.event({"role": "assistant", "content": ""})
            try:
                if first is not None:
                    yield sse.event({"content": str(first)})
                    async for piece in pieces:
                        yield sse.event({"content": str(piece)})
                yield sse.event({}, "stop")
            except Exception as exc:  # noqa: BLE001 - after the 200: reported in the stream
                text = exc.one_line() if isinstance(exc, TaskToolError) else f"{type(exc).__name__}: {exc}"
                yield sse.error(" ".join(text.split()))
            finally:
                await pieces.aclose()
            yield sse.done

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    app.add_middleware(Guard, limits=limits, counters=counters)
    return app
