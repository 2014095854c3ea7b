"""Load the model, bind the port, run uvicorn until SIGTERM/Ctrl-C, then stop cleanly.

On SIGTERM or Ctrl-C uvicorn stops accepting connections, lets the requests in flight finish (up
to `graceful_timeout_s`), then the app's shutdown drains the batcher; the process exits 0. A second
Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import time

from tasktool.errors import TaskToolError
from tasktool.io.kinds import PAIR, TEXT
from tasktool.serve.limits import Limits

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_WARM_UP = {TEXT: "Hello world.", PAIR: {"question": "Who?", "context": "Hello world."}}


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a one-line error (port taken, unknown host, no permission)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TaskToolError(f"cannot listen on '{host}': {exc.strerror}", "check --host") from exc
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise TaskToolError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            "choose another --port (or stop the other server)",
        ) from exc
    return sock


def warm_up(spec, predictor) -> None:
    """One input through the model before the first request, so it does not pay the first-call costs."""
    payload = _WARM_UP.get(spec.input_kind)
    if payload is None:
        return
    from tasktool.engine import Engine
    from tasktool.io.records import Item

    with contextlib.suppress(Exception):
        list(Engine(predictor, batch_size=1, on_error="skip", workers=1).run([Item(0, payload)]))


@contextlib.contextmanager
def _signals_end_cleanly():
    """uvicorn re-raises the signal that stopped it once it has shut down; with these handlers in place
    that re-raise does nothing, so a clean stop exits 0 instead of dying by SIGTERM or KeyboardInterrupt."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(
    spec,
    opts,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: Limits | None = None,
    max_batch_size: int = 32,
    max_batch_tokens: int | None = None,
    max_wait_ms: float = 5.0,
    graceful_timeout_s: float = 8.0,
    access_log: bool = False,
    quiet: bool = False,
) -> dict:
    """Serve `spec`'s model until stopped; returns the final counters."""
    import uvicorn

    from tasktool.console import info, warn
    from tasktool.inference import build_predictor
    from tasktool.serve.app import create_app

    limits = limits or Limits()
    opts.batch_size = max_batch_size  # what the engine runs with (shown by /v1/info)
    opts.max_batch_tokens = max_batch_tokens
    sock = bind(host, port)  # before the model loads: a taken port fails in a second, not after
    try:
        predictor = build_predictor(spec, opts)
        warm_up(spec, predictor)
        app = create_app(
            spec,
            opts,
            predictor,
            limits,
            max_batch_size=max_batch_size,
            max_batch_tokens=max_batch_tokens,
            max_wait_ms=max_wait_ms,
            workers=opts.workers or 1,
            drain_timeout_s=max(1.0, graceful_timeout_s / 2),
        )
        config = uvicorn.Config(
            app,
            log_level="info" if access_log else "warning",
            access_log=access_log,
            timeout_graceful_shutdown=graceful_timeout_s,
            server_header=False,
            lifespan="on",
        )
        server = uvicorn.Server(config)
        bound_host, bound_port = sock.getsockname()[:2]
        url = f"http://{'[' + bound_host + ']' if ':' in bound_host else bound_host}:{bound_port}"
        if host not in LOCAL_HOSTS and not limits.api_key:
            warn(f"listening on {host} without --api-key: anyone who can reach this port can use the model")
        if not quiet:
            info(f"serving {spec.name} ({opts.model}) on {url}  (docs: {url}/docs; Ctrl-C to stop)")
        started = time.monotonic()
        with _signals_end_cleanly():
            server.run(sockets=[sock])
    finally:
        sock.close()
    counters, stats = app.state.counters, app.state.batcher.stats
    summary = {
        "accepted": counters.accepted,
        "answered": counters.answered,
        "inference_requests": stats.requests,
        "inputs": stats.inputs,
        "batches": stats.batches,
        "seconds": round(time.monotonic() - started, 3),
    }
    if not quiet:
        info(
            f"stopped: {counters.answered} of {counters.accepted} requests answered; "
            f"{stats.inputs} inputs in {stats.batches} batches"
        )
    return summary
