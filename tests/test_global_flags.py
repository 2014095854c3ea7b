"""--debug, --quiet and --format work before or after the command; -q leaves only errors on stderr;
a command given nothing to work on is a usage error; shell completion is on offer."""

from __future__ import annotations

import json

import pytest
from conftest import assert_user_error


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tasktool.tasks.registry import resolve

    return resolve("text-classification").build_tiny(tmp_path_factory.mktemp("cls"), labels=["NEG", "POS"])


def test_debug_after_the_command_is_accepted_and_shows_the_traceback(cli, tmp_path):
    missing = tmp_path / "missing.csv"
    plain = cli("finetune", "sentiment", "--data", missing)
    assert_user_error(plain, "not found")
    debug = cli("finetune", "sentiment", "--data", missing, "--debug")
    assert "No such option" not in debug.err and debug.code == plain.code
    assert "Traceback" in debug.err and "not found" in debug.err


def test_debug_before_the_command_still_works_and_does_not_stick(cli, tmp_path):
    missing = tmp_path / "missing.csv"
    assert "Traceback" in cli("--debug", "evaluate", "sentiment", "--data", missing).err
    assert "Traceback" not in cli("evaluate", "sentiment", "--data", missing).err  # one run's flag only


@pytest.mark.parametrize("where", ["before", "after"])
def test_format_before_or_after_the_command(cli, where):
    args = ["tasks"]
    args = ["--format", "json", *args] if where == "before" else [*args, "--format", "json"]
    result = cli(*args)
    assert result.code == 0, result.err
    assert isinstance(json.loads(result.out), list)


def test_quiet_after_the_command_works_on_commands_without_their_own_flag(cli, model, tmp_path):
    data = tmp_path / "dev.csv"
    data.write_text("text,label\ngood film,POS\nbad film,NEG\n")
    result = cli("evaluate", "sentiment", "--model", model, "--data", data, "-q")
    assert result.code == 0, result.err
    assert result.err == "" and json.loads(result.out)["examples"] == 2


def test_quiet_leaves_nothing_but_errors_on_stderr(cli, model, tmp_path):
    long = tmp_path / "long.txt"
    long.write_text(" ".join(["word"] * 400) + "\n")
    args = ("infer", "sentiment", "--file", long, "--model", model, "--max-length", "1024")
    loud = cli(*args)
    assert "warning" in loud.err and "1 record" in loud.err  # the clamp, the cut and the final line
    quiet = cli(*args, "-q")
    assert quiet.code == 0 and quiet.err == "" and len(quiet.records()) == 1
    failing = cli("-q", "infer", "sentiment", "--file", tmp_path / "nope.txt", "--model", model)
    assert_user_error(failing, "not found")


def test_quiet_hides_the_loading_spinner(model, monkeypatch):
    import sys

    from tasktool import console, inference
    from tasktool.options import InferOptions
    from tasktool.tasks.registry import resolve

    shown = []

    class FakeConsole:
        def status(self, text, **kw):
            shown.append(text)
            return inference._nothing()

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(console, "err_console", lambda: FakeConsole())
    spec = resolve("sentiment")
    inference.build_predictor(spec, InferOptions(model=str(model)))
    assert len(shown) == 1  # on a terminal: "loading ..."
    inference.build_predictor(spec, InferOptions(model=str(model)), quiet=True)
    assert len(shown) == 1  # -q: no spinner


def test_infer_with_no_task_shows_help_and_exits_with_the_usage_code(cli):
    result = cli("infer")
    assert result.code == 2 and "Usage" in result.out + result.err


def test_a_bad_format_is_refused_before_any_model_loads(cli, tmp_path):
    # the model folder does not exist: had anything loaded first, that would be the error
    for command in (["evaluate", "sentiment", "--data", tmp_path / "x.csv"], ["infer", "sentiment", "hi"]):
        result = cli(*command, "--model", tmp_path / "no-model", "--format", "yaml")
        assert_user_error(result, "--format 'yaml'", code=2)


def test_shell_completion_is_offered(cli):
    result = cli("--help")
    assert "--install-completion" in result.out and "--show-completion" in result.out
