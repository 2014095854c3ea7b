"""Where people-facing messages go: stderr, so stdout stays clean for JSON Lines."""

from __future__ import annotations

import sys

_err = None
_quiet = False  # -q: nothing on stderr but errors (set by the command line for this run)


def set_quiet(value: bool) -> None:
    global _quiet
    _quiet = bool(value)


def is_quiet() -> bool:
    return _quiet


def err_console():
    global _err
    if _err is None:
        from rich.console import Console

        _err = Console(stderr=True, highlight=False, soft_wrap=True)
    return _err


def warn(message: str) -> None:
    if not _quiet:
        err_console().print(f"[yellow]warning:[/yellow] {message}")


def info(message: str) -> None:
    if not _quiet:
        err_console().print(message)


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
