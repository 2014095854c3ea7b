"""No network and HF_HUB_OFFLINE unset: one fast probe of the Hub endpoint, then offline at once.

A Hub id that is not cached fails in under 3 s with one line and exit code 1 (the run failed), with no
retry noise and no advice to unset a variable the user never set. Tests only ever probe names that do
not resolve here or a closed port on 127.0.0.1: nothing is aimed off this machine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

DEFAULT_HOST = "huggingface.co"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


PROXIES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def _env(**extra) -> dict:
    drop = ("HF_HUB_OFFLINE", "HF_ENDPOINT", "TRANSFORMERS_OFFLINE", *PROXIES)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


def _run(args, env, timeout=60):
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "tasktool", *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    return out, time.perf_counter() - start


def _assert_fast_one_line_failure(out, seconds):
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 1, out.stderr  # the run failed; not the usage code
    assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
    assert "unreachable" in lines[0] and "Retry" not in out.stderr
    assert "unset HF_HUB_OFFLINE" not in lines[0]  # the user never set it
    assert seconds < 3.0, seconds


@pytest.mark.skipif(
    _resolves(DEFAULT_HOST), reason="the Hub's name resolves here: this test must not reach it"
)
def test_default_endpoint_that_does_not_resolve_fails_fast_with_one_line():
    out, seconds = _run(["infer", "sentiment", "hello", "--model", "someone/some-model"], _env())
    _assert_fast_one_line_failure(out, seconds)
    assert f"{DEFAULT_HOST} does not resolve" in out.stderr


def test_endpoint_on_a_closed_local_port_fails_fast_with_one_line():
    port = _closed_port()
    env = _env(HF_ENDPOINT=f"http://127.0.0.1:{port}")
    out, seconds = _run(["infer", "sentiment", "hello"], env)  # the task's default model, a Hub id
    _assert_fast_one_line_failure(out, seconds)
    assert f"127.0.0.1:{port} refused the connection" in out.stderr


@pytest.mark.slow  # a third subprocess
def test_evaluate_with_an_unreachable_hub_id_fails_fast_too(tmp_path):
    data = tmp_path / "dev.csv"
    data.write_text("text,label\ngood,pos\n")
    env = _env(HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}")
    out, seconds = _run(["evaluate", "sentiment", "--data", str(data), "--model", "someone/x"], env)
    _assert_fast_one_line_failure(out, seconds)


def test_probe_says_why_and_switches_the_process_offline(monkeypatch):
    from tasktool import hub

    for name in PROXIES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setattr(hub, "_probe", {})
    monkeypatch.setattr(hub, "_switched", None)
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert "refused" in hub.probe()
    assert hub.ensure_reachable() is False
    assert os.environ["HF_HUB_OFFLINE"] == "1" and constants.HF_HUB_OFFLINE is True
    assert hub.switched_offline() and not hub.user_offline()
    assert hub.probe("http://name.invalid") == "name.invalid does not resolve"


def test_a_local_listener_counts_as_reachable(monkeypatch):
    from tasktool import hub

    for name in PROXIES:
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        assert hub.probe(f"http://127.0.0.1:{server.getsockname()[1]}") is None


def test_behind_a_proxy_the_proxy_is_probed_not_the_hub(monkeypatch):
    from tasktool import hub

    for name in PROXIES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert hub.probe("https://name.invalid") is None  # the proxy answers; the name is its to resolve
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{_closed_port()}")
    assert "refused" in hub.probe("https://name.invalid")


@pytest.mark.slow
def test_an_unreachable_hub_still_serves_a_cached_model_with_one_note(tmp_path):
    """Offline at once, yet a model in the Hub cache loads: the switch is what HF_HUB_OFFLINE does."""
    from tasktool.tasks.registry import resolve

    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--tiny-sentiment" / "snapshots" / ("0" * 40)
    resolve("sentiment").build_tiny(snapshot, labels=["NEG", "POS"])
    (cache / "models--someone--tiny-sentiment" / "refs").mkdir()
    (cache / "models--someone--tiny-sentiment" / "refs" / "main").write_text("0" * 40)
    env = _env(HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}", HF_HUB_CACHE=str(cache))
    out, _ = _run(
        ["infer", "sentiment", "nice", "--model", "someone/tiny-sentiment", "--format", "jsonl"], env
    )
    assert out.returncode == 0, out.stderr
    assert "working offline" in out.stderr and "Retry" not in out.stderr
    assert json.loads(out.stdout.splitlines()[0])["label"] in ("NEG", "POS")
