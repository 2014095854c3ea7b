"""The inference runner: task + options + inputs -> readers -> engine -> writers (or a list of records)."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

from tasktool.errors import TaskToolError


def build_predictor(spec, opts):
    """Load the task's implementation and model (the slow part: imports torch/transformers)."""
    from tasktool.console import err_console

    if not opts.model:
        opts.model = spec.default_model
    cls = spec.load_predictor()
    with err_console().status(f"loading {opts.model}", spinner="dots") if sys.stderr.isatty() else _nothing():
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
) -> int:
    """Run `spec` over the inputs and write records (also into `collect`, when given: the Python API);
    smoke: a shrunk model and the first few inputs."""
    from tasktool.distributed import group
    from tasktool.engine import Engine
    from tasktool.io.writers import Fanout, check_output_path, open_writers

    if output is not None:
        check_output_path(output)
    if resume and output is None:
        raise TaskToolError("--resume needs --output FILE.jsonl", "it reads the ids already written there")
    items = input_items(spec, source, output if resume else None, smoke)
    if opts.stream is None:  # one input on a terminal: its tokens are printed as they come
        first = list(itertools.islice(items, 2))
        items = itertools.chain(first, items)
        opts.stream = len(first) == 1 and not quiet and sys.stdout.isatty()
    procs = group()  # under accelerate launch / torchrun: this process's shard, one ordered output
    procs.barrier()  # every process has read the --resume ids before the main one appends
    items = procs.shard(items)
    opts.device = procs.device(opts.device)
    if smoke:
        from tasktool.tiny.shrink import shrunk_model, smoke_dir

        opts.model = str(shrunk_model(spec, opts.model, smoke_dir() / "model", opts.revision))
    predictor = build_predictor(spec, opts)
    title = f"{spec.name} ({opts.model})"
    # under several processes the main one writes every record
    writer = (
        open_writers(output, fmt, title, predictor.display, resume=resume) if procs.is_main else Fanout([])
    )
    progress = _progress(quiet or not procs.is_main or bool(opts.stream))  # a bar would cut the stream
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
    return count


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
    count = errors = 0
    complete = False
    try:
        with _graceful_interrupt(engine):
            for record in records:
                writer.write(record)
                if collect is not None:
                    collect.append(record)
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


def _progress(quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TimeElapsedColumn

    from tasktool.console import err_console

    progress = Progress(
        SpinnerColumn(),
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console(),
        transient=True,
    )
    task_id = progress.add_task("inferring", total=None)
    progress.start()

    class _P:
        def advance(self, n):
            progress.advance(task_id, n)

        def stop(self):
            progress.stop()

    return _P()
