"""Start-up, the task table, env, and errors that need no model."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from conftest import assert_user_error

from tasktool.tasks.registry import TASKS, resolve


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "tasktool", *args], capture_output=True, text=True, timeout=60
    )


def test_help_and_tasks_do_not_import_torch_or_transformers():
    code = (
        "import sys; from tasktool.cli.app import main\n"
        "sys.argv=['tasktool','tasks','--format','jsonl']\n"
        "try: main(sys.argv[1:])\nexcept SystemExit: pass\n"
        "bad=[m for m in ('torch','transformers','datasets','fastapi','uvicorn') if m in sys.modules]\n"
        "sys.stderr.write('HEAVY:'+','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY:" in out.stderr and out.stderr.split("HEAVY:")[1].strip() == ""


def test_importing_tasktool_enlarges_the_onednn_kernel_cache_unless_the_user_set_it():
    import os

    code = "import os, tasktool; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])"
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    for given, want in ((None, "4096"), ("77", "77")):
        extra = {} if given is None else {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": given}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={**env, **extra}
        )
        assert out.stdout.strip() == want, out.stderr


def test_help_and_tasks_start_fast():
    _run("--help")  # warm the file cache
    for args in (("--help",), ("tasks",)):
        best = min(_timed(args) for _ in range(3))
        assert best < 1.0, (args, best)  # the 0.2 s goal is checked in benchmarks; this catches heavy imports


def _timed(args):
    t0 = time.perf_counter()
    result = _run(*args)
    assert result.returncode == 0, result.stderr
    return time.perf_counter() - t0


def test_tasks_lists_every_registered_task_as_jsonl(cli):
    result = cli("tasks", "--format", "jsonl")
    assert result.code == 0
    names = [json.loads(line)["name"] for line in result.out.splitlines()]
    assert names == list(TASKS)


def test_aliases_resolve_to_canonical_names():
    assert resolve("ner").name == "token-classification"
    assert resolve("qa").name == "question-answering"
    assert resolve("sentiment").name == "text-classification"
    assert resolve("asr").name == "automatic-speech-recognition"
    assert resolve("Text_Generation").name == "text-generation"


def test_unknown_task_suggests_nearest_name(cli):
    result = cli("infer", "sentimnt", "hello")
    assert_user_error(result, "unknown task 'sentimnt'", "sentiment", code=2)


def test_env_reports_versions_as_json(cli):
    result = cli("env", "--format", "json")
    assert result.code == 0
    info = json.loads(result.out)
    assert info["transformers"] and info["torch"] and "hub_offline" in info
    from tasktool.runtime import cpu_has_native

    assert info["cpu_bf16_units"] is cpu_has_native("bf16")  # says whether --dtype bfloat16 pays here


def test_hub_id_while_offline_is_a_one_line_error(cli):
    result = cli("infer", "sentiment", "hello", "--model", "someone/some-model")
    assert_user_error(result, "someone/some-model", "unreachable")


def test_missing_model_folder_is_a_one_line_error(cli, tmp_path):
    result = cli("infer", "sentiment", "hello", "--model", str(tmp_path / "nope"))
    assert_user_error(result, "not found")
