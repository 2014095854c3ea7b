"""What a request may do: the API key, the body size (checked before anything parses it), the input count,
the time it may take; and the count of requests accepted and answered (a clean stop answers them all).

`Guard` is plain ASGI middleware, so a refused request costs no parsing: a wrong key is refused from the
headers alone, a body whose Content-Length is too big without reading it, and a chunked body as soon
as it grows past the limit.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass

API_KEY_ENV = "TASKTOOL_API_KEY"


@dataclass
class Limits:
    api_key: str | None = None  # checked on every request (Authorization: Bearer KEY, or X-API-Key)
    max_request_mb: float = 20.0
    max_inputs: int = 256  # inputs in one request
    timeout_s: float = 60.0  # from arrival to answer
    max_queue: int = 4096  # inputs waiting for the model before new requests get 503
    allow_urls: bool = True  # media inputs may be http(s) URLs the server fetches

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_request_mb * 1024 * 1024)

    def public(self) -> dict:
        """The limits a client may see (never the key)."""
        return {
            "max_request_mb": self.max_request_mb,
            "max_inputs": self.max_inputs,
            "timeout_s": self.timeout_s,
            "api_key_required": bool(self.api_key),
            "url_inputs": self.allow_urls,
        }


@dataclass
class Counters:
    accepted: int = 0  # requests that reached the app
    answered: int = 0  # of those, answered with a complete response
    in_flight: int = 0


async def send_error(send, status: int, message: str, headers: list | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def given_key(headers: dict[bytes, bytes]) -> bytes | None:
    auth = headers.get(b"authorization", b"")
    if auth[:7].lower() == b"bearer ":
        return auth[7:].strip()
    return headers.get(b"x-api-key")


class Guard:
    """ASGI middleware: API key, body-size limit, accepted/answered counters."""

    def __init__(self, app, limits: Limits, counters: Counters):
        self.app = app
        self.limits = limits
        self.counters = counters
        self.key = limits.api_key.encode() if limits.api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.key is not None:
            given = given_key(headers)
            if given is None or not hmac.compare_digest(given, self.key):
                await send_error(
                    send,
                    401,
                    "missing or wrong API key (send it as 'Authorization: Bearer KEY' or 'X-API-Key: KEY')",
                    [(b"www-authenticate", b"Bearer")],
                )
                return
        limit = self.limits.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await send_error(send, 400, "invalid Content-Length header")
                return
            if size > limit:
                await send_error(send, 413, self._too_big(size))
                return
        body = bytearray()
        if scope.get("method") in ("POST", "PUT", "PATCH"):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                if len(body) > limit:
                    await send_error(send, 413, self._too_big(None))
                    return
                if not message.get("more_body"):
                    break
        await self._forward(scope, bytes(body), receive, send)

    def _too_big(self, size: int | None) -> str:
        got = f" ({size / 2**20:.1f} MB)" if size is not None else ""
        return (
            f"request body too large{got}: at most {self.limits.max_request_mb:g} MB "
            "(split the inputs over several requests, or start the server with a larger --max-request-mb)"
        )

    async def _forward(self, scope, body: bytes, receive, send):
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the client's disconnect, when it comes

        done = False

        async def watch(message):
            nonlocal done
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done = True
            await send(message)

        counters = self.counters
        counters.accepted += 1
        counters.in_flight += 1
        try:
            await self.app(scope, replay, watch)
        finally:
            counters.in_flight -= 1
            counters.answered += done
