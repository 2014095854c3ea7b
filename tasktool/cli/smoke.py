"""`tasktool smoke`: every task's fine-tune → reload → infer → evaluate path, offline, in seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tasktool.cli.common import FormatOpt

HELP = """Check that every task works end to end on this machine, offline, with tiny random models.

For each task: build a tiny model of the task's default architecture, fine-tune a few steps on a
built-in sample (where the task supports fine-tuning), reload it, run `infer` and `evaluate`.
Exits 1 if any task fails. For your own data and recipe, add --smoke to finetune/infer/evaluate.

Examples:

  tasktool smoke

  tasktool smoke ner qa --format jsonl
"""


def smoke(
    tasks: Annotated[
        list[str] | None, typer.Argument(help="Tasks to check (default: all).", show_default=False)
    ] = None,
    keep: Annotated[Path | None, typer.Option(help="Keep the models and outputs in this folder.")] = None,
    fmt: FormatOpt = "auto",
):
    import os

    from tasktool.cli.common import output_format, print_rows
    from tasktool.errors import FAILURE

    fmt = output_format(fmt, pipe="jsonl")  # checked before anything runs
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # smoke never reaches for the network
    rows = run_smoke(list(tasks or []), keep)
    if fmt != "table":
        print_rows(rows, fmt)
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="tasktool smoke")
        for col in ("task", "result", "seconds", "stages / error"):
            table.add_column(col, overflow="fold")
        for row in rows:
            detail = row.get("error") or "  ".join(
                f"{k} {v:.1f}s" for k, v in row["stages"].items() if k != "total"
            )
            table.add_row(
                row["task"],
                "[green]pass[/green]" if row["ok"] else "[red]FAIL[/red]",
                f"{row['seconds']:.1f}",
                detail,
            )
        Console().print(table)
        total = sum(r["seconds"] for r in rows)
        Console().print(f"{sum(r['ok'] for r in rows)}/{len(rows)} tasks passed in {total:.1f} s")
    if not all(r["ok"] for r in rows):
        raise typer.Exit(FAILURE)


def run_smoke(task_names: list[str], keep: Path | None = None) -> list[dict]:
    """Smoke-test the given tasks (all by default); one result row per task."""
    import shutil
    import time

    from tasktool.errors import TaskToolError
    from tasktool.tasks.registry import TASKS, resolve
    from tasktool.tiny.shrink import smoke_dir

    specs = [resolve(name) for name in task_names] if task_names else list(TASKS.values())
    root = Path(keep) if keep else smoke_dir()
    rows = []
    for spec in specs:
        start = time.perf_counter()
        row = {"task": spec.name, "ok": False}
        try:
            row["stages"] = smoke_task(spec, root / spec.name)
            row["ok"] = True
        except TaskToolError as exc:
            row["error"] = exc.one_line()
        except Exception as exc:  # noqa: BLE001 - a smoke run reports every failure, it never crashes
            text = str(exc).strip()
            row["error"] = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
        row["seconds"] = round(time.perf_counter() - start, 2)
        rows.append(row)
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def smoke_task(spec, workdir: Path) -> dict:
    """Build a tiny model, fine-tune a few steps, reload, infer and evaluate (the Python API, which the
    commands run); time each stage."""
    import contextlib
    import io
    import time

    from tasktool import console

    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    model = spec.build_tiny(workdir / "tiny", **getattr(spec.sample(), "SMOKE_TINY", {}))
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    sample = spec.sample().write(workdir / "data", spec)
    stages["build"] = time.perf_counter() - t0
    # a random tiny model's warnings (below the baseline, ...) say nothing about the user's set-up:
    # they are silenced here; a stage that fails still raises
    was_quiet = console.is_quiet()
    console.set_quiet(True)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            _smoke_part(spec, sample, model, workdir, stages)
            # a sample's variants (e.g. chat + LoRA on another architecture): the same stages, prefixed
            for name, variant in sample.get("variants", {}).items():
                t = time.perf_counter()
                part = workdir / name
                tiny = spec.build_tiny(part / "tiny", **variant.get("tiny", {}))
                stages[f"{name} build"] = time.perf_counter() - t
                _smoke_part(spec, variant, tiny, part, stages, prefix=f"{name} ")
    finally:
        console.set_quiet(was_quiet)
    stages["total"] = time.perf_counter() - t0
    return stages


def _smoke_part(spec, sample: dict, model: Path, workdir: Path, stages: dict, prefix: str = "") -> None:
    """Fine-tune (where the task can), infer and evaluate one sample; each stage timed into `stages`."""
    import time

    from tasktool import api

    trained = model
    if "finetune" in spec.modes and "train" in sample:
        t = time.perf_counter()
        trained = workdir / "finetuned"
        api.finetune(
            spec.name,
            str(sample["train"]),
            eval_data=str(sample["eval"]),
            model=str(model),
            recipe=sample.get("recipe"),
            output_dir=str(trained),
            quiet=True,
            overrides=_smoke_overrides(),
        )
        stages[prefix + "finetune"] = time.perf_counter() - t
    t = time.perf_counter()
    records = _smoke_infer(spec, sample, trained, workdir)
    if not records or any("error" in r for r in records):
        raise RuntimeError(
            f"{prefix}infer returned {len(records)} records, errors: {[r.get('error') for r in records]}"
        )
    stages[prefix + "infer"] = time.perf_counter() - t
    if "evaluate" in spec.modes and "eval" in sample:
        t = time.perf_counter()
        api.evaluate(spec.name, str(trained), str(sample["eval"]))
        stages[prefix + "evaluate"] = time.perf_counter() - t


def _smoke_infer(spec, sample: dict, model: Path, workdir: Path) -> list[dict]:
    """`tasktool infer` on the sample's inputs, written to a file as the command would."""
    from tasktool import api

    return api.infer(
        spec.name,
        sample.get("infer"),
        file=sample.get("infer_file"),
        model=str(model),
        output=workdir / "predictions.jsonl",
        **sample.get("infer_options", {}),
    )


def _smoke_overrides() -> list[str]:
    """The built-in samples are small already: the smoke recipe's short run as key=value overrides."""
    from tasktool.tiny.shrink import smoke_recipe

    recipe = smoke_recipe({"generation_max_new_tokens": 8, "max_target_length": 8, "num_beams": 1})
    return [f"{k}={v}" for k, v in recipe.items() if v is not None and k != "max_eval_samples"]


def register(app: typer.Typer) -> None:
    app.command("smoke", help=HELP)(smoke)
