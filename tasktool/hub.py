"""Whether the Hugging Face Hub can be used: the environment first, then one fast probe of the endpoint.

huggingface_hub retries a failing request five times with back-off (about a minute, a dozen printed
lines) before it gives up. Before the first Hub call, `ensure_reachable()` resolves the endpoint's
name and opens one TCP connection to it (or to the proxy HTTPS_PROXY names), with a short timeout
(HF_ENDPOINT honoured); when that fails, this process switches to offline behaviour at once
(HF_HUB_OFFLINE, as if the user had set it), so a cached model still loads and anything else fails in
a second with one line. TASKTOOL_NO_HUB_PROBE=1 skips the probe.
"""

from __future__ import annotations

import os

PROBE_TIMEOUT = 1.0  # seconds for the name lookup, then for the connection
DEFAULT_ENDPOINT = "https://huggingface.co"

_probe: dict = {}  # endpoint -> None (reachable) or why not, once per process
_switched: str | None = None  # why this process switched itself offline


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def user_offline() -> bool:
    """HF_HUB_OFFLINE as the user set it (the probe's own switch does not count)."""
    return offline() and _switched is None


def switched_offline() -> str | None:
    """Why this process went offline by itself (e.g. "huggingface.co does not resolve"), or None."""
    return _switched


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def endpoint_host() -> str:
    from urllib.parse import urlsplit

    return urlsplit(endpoint()).hostname or endpoint()


def probe(url: str | None = None, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when a TCP connection to the Hub endpoint opens within `timeout`; else why not (one phrase).

    The name lookup runs in a thread so a slow resolver cannot stall the command either."""
    import socket
    import threading
    from urllib.parse import urlsplit

    parts = urlsplit(url or endpoint())
    host = parts.hostname
    if not host:
        return f"HF_ENDPOINT '{url or endpoint()}' names no host"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    proxy = _proxy_for(parts.scheme, host)
    if proxy is not None:  # behind a proxy (HTTPS_PROXY, ...): the proxy is what must answer
        host, port = proxy
    found: list = []

    def lookup():
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            found.append(exc)

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    if not found:
        return f"{host} did not resolve within {timeout:g} s"
    if isinstance(found[0], OSError):
        return f"{host} does not resolve"
    last = None
    for family, kind, proto, _, address in found[0][:3]:
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(timeout)
                sock.connect(address)
            return None
        except OSError as exc:
            last = exc
    reason = "timed out" if isinstance(last, TimeoutError) else "refused the connection"
    return f"{host}:{port} {reason}"


def _proxy_for(scheme: str, host: str):
    """(host, port) of the proxy the Hub client would use for `host`, or None."""
    import urllib.request
    from urllib.parse import urlsplit

    proxy = urllib.request.getproxies().get(scheme)
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def ensure_reachable() -> bool:
    """Before a Hub call: True when the Hub may be used. When it cannot be reached, switch this process
    offline (HF_HUB_OFFLINE) so huggingface_hub, transformers and datasets use their caches at once."""
    global _switched
    if offline():
        return False
    if os.environ.get("TASKTOOL_NO_HUB_PROBE", "").lower() in ("1", "true", "yes"):
        return True  # the user asked to skip the probe: the Hub client's own retries decide
    url = endpoint()
    if url not in _probe:
        _probe[url] = probe(url)
    why = _probe[url]
    if why is None:
        return True
    _switched = why
    set_offline()
    return False


def set_offline() -> None:
    """HF_HUB_OFFLINE for this process, including the libraries that read it once at import."""
    import sys

    os.environ["HF_HUB_OFFLINE"] = "1"
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None:
        hub_constants.HF_HUB_OFFLINE = True
    ds_config = sys.modules.get("datasets.config")
    if ds_config is not None:
        ds_config.HF_HUB_OFFLINE = True
        if hasattr(ds_config, "HF_DATASETS_OFFLINE"):
            ds_config.HF_DATASETS_OFFLINE = True


def unreachable_reason() -> str:
    """How to say why the Hub cannot be used, for one-line errors."""
    if _switched:
        return f"the Hugging Face Hub is unreachable ({_switched})"
    return "the Hugging Face Hub is unreachable (HF_HUB_OFFLINE is set)"


def in_cache(repo_id: str) -> bool:
    """Whether any snapshot of model `repo_id` is in the local Hub cache (what offline loading can use)."""
    from pathlib import Path

    from huggingface_hub import constants

    folder = Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--")) / "snapshots"
    return folder.is_dir() and any(folder.iterdir())


_noted = False


def note_offline() -> None:
    """Once per process, after something loaded from the cache because the probe switched offline."""
    global _noted
    if _switched and not _noted:
        _noted = True
        from tasktool.console import info

        info(f"note: {unreachable_reason()}: working offline (local folders and the cache)")


def unreachable_hint() -> str:
    if _switched:
        return "connect to the network or set HF_ENDPOINT to a mirror"
    return "go online and unset HF_HUB_OFFLINE"
