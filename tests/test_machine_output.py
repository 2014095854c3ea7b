"""Machine output everywhere: on a pipe (or with --format json|jsonl) evaluate, finetune, tasks, recipes,
env and smoke print JSON instead of tables; `--output -` means stdout."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from tasktool.tasks.registry import TASKS

EVALUATED = [name for name, spec in TASKS.items() if "evaluate" in spec.modes]


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """task -> (tiny model folder, its sample's evaluation data), built once."""
    out = {}
    for name in EVALUATED:
        spec = TASKS[name]
        folder = tmp_path_factory.mktemp(name)
        model = spec.build_tiny(folder / "model", **getattr(spec.sample(), "SMOKE_TINY", {}))
        # a tasktool-trained folder's own settings: short generations, as `tasktool smoke` uses
        (model / "recipe.yaml").write_text("generation_max_new_tokens: 4\nnum_beams: 1\n")
        generation = model / "generation_config.json"
        if generation.exists():
            settings = json.loads(generation.read_text())
            generation.write_text(json.dumps({**settings, "max_new_tokens": 4, "num_beams": 1}))
        (folder / "data").mkdir()
        out[name] = (model, spec.sample().write(folder / "data", spec)["eval"])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("task", EVALUATED)
def test_evaluate_on_a_pipe_prints_one_json_object_for_every_task_with_a_metric(cli, samples, task):
    model, data = samples[task]
    result = cli("evaluate", task, "--model", model, "--data", data)  # stdout is captured: not a terminal
    assert result.code == 0, result.err
    metrics = json.loads(result.out)
    assert metrics["examples"] >= 1 and all(  # numbers; the baseline beside them is named
        isinstance(v, (int, float)) or v is None or k == "baseline" for k, v in metrics.items()
    )


@pytest.mark.slow
def test_evaluate_piped_into_json_load_in_a_real_shell_pipeline(samples):
    """`tasktool evaluate ... | python -c "import json,sys; json.load(sys.stdin)"`, as a shell runs it."""
    model, data = samples["text-classification"]
    command = (
        f"{shlex.quote(sys.executable)} -m tasktool evaluate sentiment --model {shlex.quote(str(model))} "
        f"--data {shlex.quote(str(data))} | {shlex.quote(sys.executable)} -c "
        '"import json,sys; m = json.load(sys.stdin); print(sorted(m))"'
    )
    out = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "accuracy" in out.stdout and "examples" in out.stdout, (out.stdout, out.stderr)


def test_evaluate_output_dash_is_stdout_and_the_file_option_still_writes_json(cli, samples, tmp_path):
    model, data = samples["text-classification"]
    dash = cli("evaluate", "sentiment", "--model", model, "--data", data, "--output", "-")
    assert dash.code == 0, dash.err
    assert json.loads(dash.out)["examples"] >= 1
    assert not (tmp_path / "-").exists()
    out = tmp_path / "m.json"
    cli("evaluate", "sentiment", "--model", model, "--data", data, "--output", out)
    assert json.loads(out.read_text()) == json.loads(dash.out)


def test_evaluate_table_only_when_asked_on_a_pipe(cli, samples):
    model, data = samples["text-classification"]
    table = cli("evaluate", "sentiment", "--model", model, "--data", data, "--format", "table")
    assert "metric" in table.out and "accuracy" in table.out
    with pytest.raises(json.JSONDecodeError):
        json.loads(table.out)


def test_infer_output_dash_writes_json_lines_to_stdout_not_a_file(cli, samples, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, _ = samples["text-classification"]
    result = cli("infer", "sentiment", "good", "bad", "--model", model, "--output", "-")
    assert result.code == 0, result.err
    assert [r["input"] for r in result.records()] == ["good", "bad"]
    assert not (tmp_path / "-").exists()
    as_json = cli("infer", "sentiment", "good", "bad", "--model", model, "--format", "json")
    assert [r["input"] for r in json.loads(as_json.out)] == ["good", "bad"]


@pytest.mark.slow
def test_finetune_on_a_pipe_prints_its_summary_as_json(cli, samples, tmp_path):
    from sample_data import classification_rows, write_csv

    model, _ = samples["text-classification"]
    data = write_csv(tmp_path / "train.csv", classification_rows(20))
    out = tmp_path / "out"
    result = cli("finetune", "sentiment", "--data", data, "--model", model, "-o", out, "max_steps=2", "-q")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary == {**json.loads((out / "metrics.json").read_text()), "output_dir": str(out)}


def test_tasks_recipes_env_print_json_on_a_pipe(cli):
    tasks = [json.loads(line) for line in cli("tasks").out.splitlines()]
    assert [t["name"] for t in tasks] == list(TASKS)
    recipes = [json.loads(line) for line in cli("recipes", "list").out.splitlines()]
    assert {"text-classification", "token-classification"} <= {r["task"] for r in recipes}
    assert all(isinstance(r["lr"], float) for r in recipes)
    shown = json.loads(cli("recipes", "show", "ner", "--format", "json").out)
    assert shown["task"] == "token-classification"
    env = json.loads(cli("env", "--no-device").out)
    assert "hub_offline" in env


def test_smoke_prints_json_lines_on_a_pipe_and_one_array_with_format_json(cli, monkeypatch):
    from tasktool.cli import smoke

    monkeypatch.setattr(smoke, "smoke_task", lambda spec, workdir: {"build": 0.1, "total": 0.1})
    lines = cli("smoke", "ner", "qa").out.splitlines()
    assert [json.loads(line)["task"] for line in lines] == ["token-classification", "question-answering"]
    rows = json.loads(cli("smoke", "ner", "--format", "json").out)
    assert rows[0]["ok"] is True
