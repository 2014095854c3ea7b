"""The inference runner: task + options + inputs -> readers -> engine -> writers (or a list of records)."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

from tasktool.errors import TaskToolError


def build_predictor(spec, opts, quiet: bool = False):
    """Load the task's implementation and model (the slow part: imports torch/transformers)."""
    from tasktool.console import err_console, is_quiet

    if not opts.model:
        opts.model = spec.default_model
    cls = spec.load_predictor()
    spinner = sys.stderr.isatty() and not (quiet or is_quiet())
    with err_console().status(f"loading {opts.model}", spinner="dots") if spinner else _nothing():
        return cls(spec, opts)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def done_ids(output: Path) -> set:
    """Ids already written to a (partial) JSON Lines output, for --resume."""
    from tasktool.io.writers import partial_path

    ids: set = set()
    for path in (output, partial_path(output)):
        if not path.exists():
            continue
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    ids.add(json.dumps(json.loads(line)["id"]))
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut by a kill: its input runs again
    return ids


def run_inference(
    spec,
    opts,
    source,
    output: Path | None = None,
    fmt: str = "auto",
    resume: bool = False,
    on_error: str = "raise",
    quiet: bool = False,
    smoke: bool = False,
    collect: list | None = None,
    keep: bool = False,
) -> int:
    """Run `spec` over the inputs and write records (also into `collect`, when given: the Python API);
    smoke: a shrunk model and the first few inputs."""
    from tasktool.distributed import group
    from tasktool.engine import Engine
    from tasktool.io.writers import FORMATS, Fanout, check_output_path, is_stdout, open_writers

    if fmt not in (*FORMATS, "none"):  # option values are checked before anything loads
        raise TaskToolError(f"unknown --format '{fmt}'", f"use one of {', '.join(FORMATS)}")
    if is_stdout(output):  # `--output -`: stdout, JSON Lines unless --format says otherwise
        output, fmt = None, ("jsonl" if fmt in ("auto", "none") else fmt)
    if output is not None:
        check_output_path(output)
    if resume and output is None:
        raise TaskToolError("--resume needs --output FILE.jsonl", "it reads the ids already written there")
    items = input_items(spec, source, output if resume else None, smoke)
    total = None if resume or smoke else _known_total(spec, source)
    if not smoke:  # a missing folder or an unreachable Hub id fails now, before torch is imported
        from tasktool.runtime import check_model_ref

        opts.model = check_model_ref(opts.model or spec.default_model)
    procs = group()  # under accelerate launch / torchrun: this process's shard, one ordered output
    procs.barrier()  # every process has read the --resume ids before the main one appends
    items = procs.shard(items)
    opts.device = procs.device(opts.device)
    if smoke:
        from tasktool.tiny.shrink import shrunk_model, smoke_dir

        folder = smoke_dir(keep=keep) / "model"  # removed at exit unless --keep
        opts.model = str(shrunk_model(spec, opts.model, folder, opts.revision, opts.max_length))
    predictor = build_predictor(spec, opts, quiet)
    title = f"{spec.name} ({opts.model})"
    # under several processes the main one writes every record
    writer = (
        open_writers(output, fmt, title, predictor.display, resume=resume) if procs.is_main else Fanout([])
    )
    progress = _progress(quiet or not procs.is_main, total if procs.size == 1 else None)
    engine = Engine(
        predictor,
        batch_size=opts.batch_size,
        max_batch_tokens=opts.max_batch_tokens,
        workers=opts.workers,
        on_error=on_error,
        on_batch=progress.advance if progress else None,
    )
    records = procs.in_order(engine.run(items), engine.window)
    count, errors = _write_all(records, writer, engine, progress, collect)
    if errors:
        from tasktool.console import warn

        warn(f"{errors} of {count} inputs failed (see their 'error' field)")
    if not quiet and procs.is_main and fmt != "none":
        from tasktool.console import info

        where = f"written to {output}" if output is not None else "on stdout"
        info(f"{count} record{'s' if count != 1 else ''} {where}" + (" (smoke run)" if smoke else ""))
    return count


def _known_total(spec, source) -> int | None:
    """How many inputs there are, where that is cheap to know (arguments, files, datasets)."""
    from tasktool.io.inputs import count_inputs

    try:
        return count_inputs(spec.input_kind, source)
    except Exception:  # noqa: BLE001 - a count is a nicety; reading the inputs reports real errors
        return None


def input_items(spec, source, resume_from: Path | None, smoke: bool):
    """The items to run: read errors and empty input surface here, before any model loads; with
    --resume, the inputs whose ids the output already holds are left out."""
    from tasktool.io.inputs import items_for

    items = items_for(spec.input_kind, source)
    if smoke:
        from tasktool.tiny.shrink import SMOKE_EXAMPLES

        items = itertools.islice(items, SMOKE_EXAMPLES)
    first = list(itertools.islice(items, 1))
    if not first:
        raise TaskToolError("no inputs", "give text arguments, --file, --dataset, or pipe lines into stdin")
    items = itertools.chain(first, items)
    skip = done_ids(resume_from) if resume_from is not None else set()
    if skip:
        items = (item for item in items if json.dumps(item.id) not in skip)
    return items


def _write_all(records, writer, engine, progress, collect: list | None) -> tuple[int, int]:
    """Write every record as it comes; the output is marked complete only if the run ends normally."""
    from tasktool.io.records import to_jsonable

    count = errors = 0
    complete = False
    try:
        with _graceful_interrupt(engine):
            for record in records:
                writer.write(record)
                if collect is not None:  # the Python API: the records exactly as they are written
                    collect.append(to_jsonable(record))
                count += 1
                errors += "error" in record
        complete = True
    finally:
        if progress:
            progress.stop()
        writer.close(complete)
    return count, errors


class _graceful_interrupt:
    """First Ctrl-C: finish the current batch, write the finished records, exit 130. Second: stop now."""

    def __init__(self, engine):
        self.engine = engine
        self.previous = None

    def _handler(self, signum, frame):
        import signal

        from tasktool.console import warn

        warn("interrupted: finishing the current batch (Ctrl-C again to stop at once)")
        self.engine.stop = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def _progress(quiet: bool, total: int | None = None):
    """A progress bar on a terminal: done/total, inputs per second and the time left when the total is
    known (files, datasets, arguments); done and the rate when it is not (stdin, streamed datasets)."""
    from tasktool.console import err_console, is_quiet

    if quiet or is_quiet() or not sys.stderr.isatty():
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:.1f} inputs/s", style="progress.data.speed")

    columns = [SpinnerColumn(), "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn()]
    columns += [RateColumn(), TimeElapsedColumn()]
    if total is not None:
        columns += ["eta", TimeRemainingColumn()]
    progress = Progress(*columns, console=err_console(), transient=True)
    task_id = progress.add_task("inferring", total=total)
    progress.start()

    class _P:
        bar, task = progress, progress.tasks[0]

        def advance(self, n):
            progress.advance(task_id, n)

        def stop(self):
            progress.stop()

    return _P()
