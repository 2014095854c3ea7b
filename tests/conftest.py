"""Shared fixtures: tiny random models built once per session, and an in-process CLI runner."""

from __future__ import annotations

import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session", autouse=True)
def _threads():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """tiny(task, **kwargs) -> folder of a tiny random model for that task (built once per arguments)."""
    from tasktool.tasks.registry import resolve

    cache: dict = {}

    def make(task: str, **kwargs) -> Path:
        key = (task, json.dumps(kwargs, sort_keys=True, default=str))
        if key not in cache:
            out = tmp_path_factory.mktemp("tiny-" + task.replace("/", "_"))
            cache[key] = resolve(task).build_tiny(out, **kwargs)
        return cache[key]

    return make


@dataclass
class Result:
    code: int
    out: str
    err: str

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


@pytest.fixture
def nothing_dropped(monkeypatch):
    """tasktool's CPU dropout told to drop and rescale nothing; yields the (shape, p) of each mask asked for.

    Train mode must then compute exactly what eval mode does."""
    import torch

    from tasktool.accel import fast_dropout

    calls: list = []
    monkeypatch.setattr(
        fast_dropout,
        "keep_mask",
        lambda shape, p, dtype, device=None: (
            calls.append((tuple(shape), p)) or torch.ones(shape, dtype=dtype)
        ),
    )
    monkeypatch.setattr(fast_dropout, "keep_scale", lambda p: 1.0)
    return calls


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `tasktool ARGS...` in-process; returns exit code, stdout and stderr."""
    from tasktool.cli.app import main

    def run(*args, input: str | None = None) -> Result:
        monkeypatch.setattr(sys, "stdin", io.StringIO(input or ""))
        monkeypatch.setattr(sys, "argv", ["tasktool", *map(str, args)])
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def assert_user_error(result: Result, *words: str, code: int | None = None) -> None:
    """A one-line error naming the problem, a non-zero exit code, and no traceback."""
    assert result.code != 0, result
    if code is not None:
        assert result.code == code, result
    assert "Traceback" not in result.err and "Traceback" not in result.out, result.err
    lines = [ln for ln in result.err.strip().splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error:"), result.err
    error_lines = [ln for ln in lines if ln.startswith("error:")]
    assert len(error_lines) == 1, result.err
    for word in words:
        assert word.lower() in result.err.lower(), (word, result.err)


def graph_as_default(folder: Path, file: str, tmp_path: Path) -> Path:
    """A copy of an exported folder whose manifest makes `file` the graph inference runs."""
    import shutil

    copy = tmp_path / f"{folder.name}-{file}"
    shutil.copytree(folder, copy)
    manifest = json.loads((copy / "export.json").read_text())
    manifest["default"] = file
    (copy / "export.json").write_text(json.dumps(manifest))
    return copy
