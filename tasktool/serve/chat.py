"""`POST /v1/chat/completions`, OpenAI-compatible, over a predictor's chat support.

The server does no chat templating of its own. It asks the predictor for:

    predictor.chat(messages, **options) -> str | dict
        messages: [{"role": "system"|"user"|"assistant", "content": str}, ...]
        options:  only those the client set, among max_new_tokens, temperature, top_p, stop (list of
                  strings), seed
        returns:  the assistant's reply, or {"text": reply, "finish_reason": "stop"|"length",
                  "prompt_tokens": int, "completion_tokens": int} (all but "text" optional)
    predictor.chat_stream(messages, **options) -> Iterable[str]      (optional)
        the reply in pieces as they are generated; without it `stream: true` sends the whole reply
        as one piece

Both run on the model's worker thread, between inference batches. A predictor without `chat` gets
501 with a one-line error. A bad conversation (unknown role, ...) raised as TaskToolError is a 422.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tasktool.serve.inputs import BadRequest


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """The fields of OpenAI's chat completion request that tasktool reads; others are ignored."""

    model_config = ConfigDict(extra="ignore")

    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = None
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: Literal[1] = 1


def parse_request(raw: bytes) -> ChatRequest:
    """The request, or BadRequest: 400 for a body that is not JSON, 422 naming the first wrong field."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"invalid JSON body: {exc}", status=400) from None
    try:
        return ChatRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise BadRequest(f"{where or 'body'}: {first.get('msg', 'invalid')}") from None


def has_chat(predictor) -> bool:
    return callable(getattr(predictor, "chat", None))


def messages_of(request: ChatRequest) -> list[dict]:
    out = []
    for n, message in enumerate(request.messages):
        content = message.content
        if isinstance(content, list):  # content parts: only text ones are understood
            texts = []
            for part in content:
                if part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise BadRequest(f"messages[{n}]: only text content parts are supported")
                texts.append(part["text"])
            content = "".join(texts)
        out.append({"role": message.role, "content": content or ""})
    return out


def options_of(request: ChatRequest) -> dict:
    options: dict[str, Any] = {}
    tokens = request.max_completion_tokens or request.max_tokens
    if tokens:
        options["max_new_tokens"] = tokens
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.top_p is not None:
        options["top_p"] = request.top_p
    if request.stop:
        options["stop"] = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    if request.seed is not None:
        options["seed"] = request.seed
    return options


def _base(model: str, kind: str) -> dict:
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex,
        "object": kind,
        "created": int(time.time()),
        "model": model,
    }


def completion(model: str, reply) -> dict:
    """An OpenAI chat.completion object from what predictor.chat returned."""
    if isinstance(reply, dict):
        text, finish = str(reply.get("text", "")), reply.get("finish_reason") or "stop"
    else:
        text, finish = str(reply), "stop"
    out = _base(model, "chat.completion")
    out["choices"] = [
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
    ]
    if isinstance(reply, dict) and "prompt_tokens" in reply and "completion_tokens" in reply:
        prompt, done = int(reply["prompt_tokens"]), int(reply["completion_tokens"])
        out["usage"] = {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}
    return out


class ChunkStream:
    """Server-sent events of chat.completion.chunk objects, ending with `data: [DONE]`."""

    def __init__(self, model: str):
        self.head = _base(model, "chat.completion.chunk")

    def event(self, delta: dict, finish: str | None = None) -> str:
        chunk = {**self.head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    @staticmethod
    def error(message: str) -> str:
        return f"data: {json.dumps({'error': message}, ensure_ascii=False)}\n\n"

    done = "data: [DONE]\n\n"
