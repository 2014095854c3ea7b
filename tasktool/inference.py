"""The inference runner: task + options + inputs -> readers -> engine -> writers (or a list of records)."""

from __future__ import annotations

import collections
import itertools
import json
import math
import os
import sys
from pathlib import Path

from tasktool.errors import TaskToolError


def build_predictor(spec, opts, quiet: bool = False):
    """Load the task's implementation and model (the slow part: imports torch/transformers)."""
    from tasktool.console import err_console, is_quiet

    if not opts.model:
        opts.model = spec.default_model
    choose_backend(spec, opts)
    cls = spec.load_predictor()
    chosen = opts.batch_size is not None or opts.max_batch_tokens is not None
    if opts.batch_size is None:
        opts.batch_size = cls.default_batch_for(opts.model)
    spinner = sys.stderr.isatty() and not (quiet or is_quiet())
    with err_console().status(f"loading {opts.model}", spinner="dots") if spinner else _nothing():
        predictor = cls(spec, opts)
    batching = None if chosen else predictor.cpu_batching()
    if batching:
        opts.batch_size, opts.max_batch_tokens = batching
    return predictor


def choose_backend(spec, opts) -> None:
    """--backend: ONNX Runtime runs an exported folder; on a torch model it runs its cached export."""
    from tasktool import backends

    choice = getattr(opts, "backend", "auto") or "auto"
    if choice not in ("auto", *backends.BACKENDS):
        raise TaskToolError(f"invalid --backend '{choice}'", "choose one of auto, torch, onnxruntime")
    if choice == "torch" and backends.is_exported(opts.model):
        raise TaskToolError(
            f"'{opts.model}' is an ONNX export: it runs with ONNX Runtime only",
            "drop --backend torch, or pass the torch model it came from",
        )
    if choice == "onnxruntime":
        from tasktool.export.cache import onnx_model_for

        opts.model = onnx_model_for(spec, opts)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


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
    overwrite: bool = False,
    keep: bool = False,
) -> int:
    """Run `spec` over the inputs and write records (also into `collect`, when given: the Python API);
    smoke: a shrunk model and the first few inputs.

    Before anything loads: option ranges, the output's folder, an output that would land on an
    input, a second run on the same output (the lock), and with --resume the partial file's
    fingerprint. A complete output is replaced by a resume only with `overwrite`."""
    from tasktool.distributed import group
    from tasktool.io.outputs import OutputLock, refuse_overlap
    from tasktool.io.writers import FORMATS, check_output_path, is_stdout
    from tasktool.options import check_options

    if fmt not in (*FORMATS, "none"):  # option values are checked before anything loads
        raise TaskToolError(f"unknown --format '{fmt}'", f"use one of {', '.join(FORMATS)}")
    if is_stdout(output):  # `--output -`: stdout, JSON Lines unless --format says otherwise
        output, fmt = None, ("jsonl" if fmt in ("auto", "none") else fmt)
    check_options(spec, opts)
    if output is not None:
        check_output_path(output)
        refuse_overlap(output, "--output", _input_paths(spec, source, opts))
    if resume and output is None:
        raise TaskToolError(
            "--resume needs --output FILE.jsonl", "it reads the records already written there"
        )
    if resume and output.suffix.lower() != ".jsonl":
        raise TaskToolError("--resume needs a .jsonl --output", "write JSON Lines to resume")
    if not smoke:  # a missing folder or an unreachable Hub id fails now, before torch is imported
        from tasktool.runtime import check_model_ref

        opts.model = check_model_ref(opts.model or spec.default_model)
    procs = group()  # under accelerate launch / torchrun: this process's shard, one ordered output
    lock = OutputLock(output).acquire() if output is not None and procs.is_main else None
    try:
        count = _run(
            spec, opts, source, output, fmt, resume, on_error, quiet, smoke, collect, overwrite, procs, keep
        )
    finally:
        if lock is not None:
            lock.release()
    procs.close()  # several processes: all done with the group, torn down before interpreter exit
    return count


def _run(
    spec, opts, source, output, fmt, resume, on_error, quiet, smoke, collect, overwrite, procs, keep=False
) -> int:
    from tasktool.engine import Engine, Interrupted
    from tasktool.io.writers import Fanout, open_writers

    meta = run_fingerprint(spec, opts, source, smoke) if output is not None and _is_jsonl(output) else None
    partial = resume_from(output, meta, overwrite) if resume else None
    if output is not None and not resume and meta is not None:
        _note_discarded_partial(output)
    items = input_items(spec, source, partial, smoke, visuals=_visuals_folder(spec, opts), model=opts.model)
    if opts.stream is None:  # one input on a terminal: its tokens are printed as they come
        first = list(itertools.islice(items, 2))
        items = itertools.chain(first, items)
        opts.stream = len(first) == 1 and not quiet and sys.stdout.isatty()
    procs.barrier()  # every process has read the --resume records before the main one appends
    items = procs.shard(items)
    opts.device = procs.device(opts.device)
    if smoke:
        from tasktool.tiny.shrink import shrunk_model, smoke_dir

        folder = smoke_dir(keep=keep) / "model"  # removed at exit unless --keep
        opts.model = str(shrunk_model(spec, opts.model, folder, opts.revision, opts.max_length))
    shown = opts.model or spec.default_model  # --backend onnxruntime swaps in its cache folder
    predictor = build_predictor(spec, opts, quiet)
    title = f"{spec.name} ({shown})"
    # under several processes the main one writes every record
    writer = (
        open_writers(output, fmt, title, predictor.display, resume=partial is not None, meta=meta)
        if procs.is_main
        else Fanout([])
    )
    total = None if resume or smoke else _known_total(spec, source)
    # a bar would cut a stream of tokens
    progress = _progress(quiet or not procs.is_main or bool(opts.stream), total if procs.size == 1 else None)
    engine = Engine(
        predictor,
        batch_size=opts.batch_size,
        max_batch_tokens=opts.max_batch_tokens,
        workers=opts.workers,
        on_error=on_error,
        on_batch=progress.advance if progress else None,
    )
    records = procs.in_order(engine.run(items), engine.window)
    try:
        count, errors = _write_all(records, writer, engine, progress, collect)
    except Interrupted as exc:
        if output is not None and output.exists() and _is_jsonl(output):
            exc.hint = (
                f"finished records were written to {output.name}.partial; rerun with --resume --overwrite "
                f"to continue (it replaces the earlier complete {output.name})"
            )
        raise
    if errors:
        from tasktool.console import warn

        warn(f"{errors} of {count} inputs failed (see their 'error' field)")
    if not quiet and procs.is_main and fmt != "none":
        from tasktool.console import info

        where = f"written to {output}" if output is not None else "on stdout"
        info(f"{count} record{'s' if count != 1 else ''} {where}" + (" (smoke run)" if smoke else ""))
        note = predictor.run_note()
        if note:
            info(note)
    return count


def _known_total(spec, source) -> int | None:
    """How many inputs there are, where that is cheap to know (arguments, files, datasets)."""
    from tasktool.io.inputs import count_inputs

    try:
        return count_inputs(spec.input_kind, source)
    except Exception:  # noqa: BLE001 - a count is a nicety; reading the inputs reports real errors
        return None


def _is_jsonl(output: Path) -> bool:
    return output.suffix.lower() == ".jsonl"


# ---------------------------------------------------------------------- what a run reads


def _input_paths(spec, source, opts) -> list[tuple[str, str]]:
    """The inputs an --output must not land on: the input file, a dataset folder, the model folder."""
    pairs = [("model folder", opts.model or "")]
    if source.file:
        pairs.append(("input file", source.file))
    if source.dataset:
        pairs.append(("dataset", source.dataset))
    return pairs


def _visuals_folder(spec, opts) -> Path | None:
    from tasktool.io.kinds import AUDIO, IMAGE

    if not opts.save_visuals or spec.input_kind not in (AUDIO, IMAGE):
        return None
    return Path(opts.save_visuals).expanduser()


class _VisualsGuard:
    """--save-visuals writes NAME-INDEX.png pictures: its folder may not be an input folder (or lie
    inside one: the next run would read the pictures as inputs), the model or dataset folder, nor
    hold any input file of this run (a picture could replace it)."""

    def __init__(self, folder: Path, source, model: str | None):
        from tasktool.io.outputs import real, refuse_overlap

        self.folder = folder
        self.real = real(folder)
        folders = [("model folder", model or "")]
        if source.dataset:
            folders.append(("dataset", source.dataset))
        for arg in source.texts:
            if Path(arg).expanduser().is_dir():
                folders.append(("input folder", arg))
        refuse_overlap(folder, "--save-visuals", folders)  # pictures are written flat into it

    def check(self, item) -> None:
        from tasktool.io.outputs import real

        payload = item.payload
        if isinstance(payload, (str, Path)) and not str(payload).startswith(("http://", "https://")):
            if real(payload).parent == self.real:
                raise TaskToolError(
                    f"--save-visuals '{self.folder}' holds the input '{payload}': a picture written there "
                    "could replace an input",
                    "choose a folder of its own for --save-visuals, e.g. --save-visuals visuals/",
                )


def input_items(
    spec, source, resume_from: Path | None, smoke: bool, visuals: Path | None = None, model: str | None = None
):
    """The items to run: read errors, repeated ids and empty input surface here, before any model
    loads; with --resume, the inputs the partial output already holds (checked one by one: same
    id, same input, in the same order) are left out."""
    from tasktool.io.inputs import items_for

    guard = _VisualsGuard(visuals, source, model) if visuals is not None else None
    if source.file and source.file != "-":
        # a file can be read twice: the whole of it is checked now, not after hours of inference
        collections.deque(_checked(items_for(spec.input_kind, source), guard), maxlen=0)
        guard = None
    items = _checked(items_for(spec.input_kind, source), guard)
    if smoke:
        from tasktool.tiny.shrink import SMOKE_EXAMPLES

        items = itertools.islice(items, SMOKE_EXAMPLES)
    first = list(itertools.islice(items, 1))
    if not first:
        raise TaskToolError("no inputs", "give text arguments, --file, --dataset, or pipe lines into stdin")
    items = itertools.chain(first, items)
    if resume_from is not None:
        items = _skip_done(items, resume_from)
    return items


def _checked(items, guard=None):
    """Items whose ids are unique, all given or all row numbers, and never NaN: a repeated id would
    make two inputs one record in a later --resume or join."""
    seen: dict[str, int] = {}
    given_kind = None
    for n, item in enumerate(items):
        given = bool(item.meta.get("given_id"))
        if given_kind is None:
            given_kind = given
        elif given != given_kind:
            first = "have an 'id'" if given_kind else "have no 'id' (their row numbers are their ids)"
            raise TaskToolError(
                f"input {n + 1} {'has' if given else 'has no'} an 'id' while the inputs before it {first}",
                "give every row an id, or none (row numbers are then the ids)",
            )
        if isinstance(item.id, float) and not math.isfinite(item.id):
            raise TaskToolError(f"input {n + 1}: id {item.id!r} is not a valid id", "use a string or number")
        key = json.dumps(item.id, sort_keys=True, ensure_ascii=False, default=str)
        if key in seen:
            raise TaskToolError(
                f"input {n + 1} repeats the id {item.id!r} of input {seen[key] + 1}",
                "ids must be unique: fix the id column, or drop it (row numbers are then the ids)",
            )
        seen[key] = n
        if guard is not None:
            guard.check(item)
        yield item


def _skip_done(items, partial: Path):
    """Consume the inputs the partial file holds records for, checking each record against its input
    (id and input, in order); returns the iterator over the rest."""
    from tasktool.io.records import dumps

    it = iter(items)
    with open(partial, encoding="utf-8", errors="replace") as fh:
        lines = iter(fh)
        for n, line in enumerate(lines, 1):
            try:
                if not line.endswith("\n"):
                    raise ValueError("cut")
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a record")
            except ValueError:
                if next(lines, None) is None:
                    break  # the last line, cut by a kill: its input runs again
                raise TaskToolError(
                    f"--resume: line {n} of '{partial}' is not a record", _START_AGAIN
                ) from None
            item = next(it, None)
            if item is None:
                raise TaskToolError(
                    f"--resume: '{partial}' holds more records ({n}+) than there are inputs", _START_AGAIN
                )
            want = json.loads(dumps({"id": item.id, "input": item.shown()}))
            if record.get("id") != want["id"] or record.get("input") != want["input"]:
                raise TaskToolError(
                    f"--resume: record {n} of '{partial}' (id {record.get('id')!r}) is not the record of "
                    f"input {n} (id {item.id!r}): the inputs changed since that run",
                    _START_AGAIN,
                )
    return it


_START_AGAIN = "run with the inputs of that run, or without --resume to start again"


def _note_discarded_partial(output: Path) -> None:
    from tasktool.io.writers import partial_path

    partial = partial_path(output)
    if partial.exists():
        from tasktool.console import warn

        warn(
            f"starting again: the unfinished '{partial.name}' of an earlier run is discarded (--resume continues it)"
        )


# ---------------------------------------------------------------------- --resume


# options that change no record (speed, device placement, safety switches, side outputs)
_NOT_FINGERPRINTED = {
    "model",
    "device",
    "batch_size",
    "max_batch_tokens",
    "workers",
    "compile",
    "trust_remote_code",
    "allow_pickle",
    "save_visuals",
    "save_raw",
}


def run_fingerprint(spec, opts, source, smoke: bool) -> dict:
    """What a run's records depend on, flat and readable ({"--max-length": 128, "input file": ...}):
    stored beside the partial output, compared by --resume."""
    from dataclasses import fields

    meta: dict = {"version": 1, "task": spec.name, "smoke": smoke}
    meta.update(_model_identity(opts.model or spec.default_model, opts.revision))
    for f in fields(opts):
        if f.name not in _NOT_FINGERPRINTED and f.name != "revision":
            meta["--" + f.name.replace("_", "-")] = json.loads(json.dumps(getattr(opts, f.name), default=str))
    meta.update(_input_identity(source))
    return json.loads(json.dumps(meta, default=str))


def _digest(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _model_identity(ref: str, revision: str | None) -> dict:
    folder = Path(ref).expanduser()
    if not folder.is_dir():
        return {"model": ref, "model revision": revision}
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name != "README.md":
            stat = path.stat()
            files[path.name] = (
                _digest(path) if stat.st_size < (1 << 20) else f"{stat.st_size}:{stat.st_mtime_ns}"
            )
    return {"model": os.path.realpath(folder), "model files": files}


def _input_identity(source) -> dict:
    import hashlib

    def sha(value) -> str:
        return hashlib.sha256(json.dumps(value, ensure_ascii=True, default=str).encode()).hexdigest()

    meta = {
        "--column": source.column,
        "--question/--context": sha([source.question, source.context]),
        "input format": [source.fmt, source.delimiter],
    }
    if source.file and source.file != "-":
        meta["input file"] = os.path.realpath(source.file)
        meta["input file contents"] = _digest(Path(source.file))
    elif source.dataset:
        meta["--dataset"] = [source.dataset, source.split, source.dataset_config]
        folder = Path(source.dataset).expanduser()
        if folder.is_dir():
            meta["dataset files"] = sha(
                sorted(
                    (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                    for p in folder.rglob("*")
                    if p.is_file()
                )
            )
    elif source.texts and source.texts != ("-",):
        meta["input arguments"] = sha(list(source.texts))
    else:
        meta["input"] = "stdin"  # its records are checked one by one against the partial output
    return meta


def resume_from(output: Path, meta: dict, overwrite: bool) -> Path | None:
    """The partial output --resume continues (None: there is none, start from the first input).

    Only NAME.partial is trusted, and only when its fingerprint matches this run; a complete NAME is
    never read, and never replaced by a resume without --overwrite."""
    from tasktool.io.writers import meta_path, partial_path

    partial = partial_path(output)
    if not partial.exists():
        if output.exists() and not overwrite:
            raise TaskToolError(
                f"--resume: '{output}' is complete; there is no unfinished run to continue",
                "pass --overwrite to run it again from the start, or choose another --output",
            )
        from tasktool.console import info

        info(f"--resume: no unfinished '{partial.name}': starting from the first input")
        return None
    if output.exists() and not overwrite:
        raise TaskToolError(
            f"--resume would replace '{output}', the complete output of an earlier run, when it finishes",
            "pass --overwrite to allow that, or move the complete file away first",
        )
    try:
        saved = json.loads(meta_path(output).read_text(encoding="utf-8"))
        if not isinstance(saved, dict):
            raise ValueError
    except (OSError, ValueError):
        raise TaskToolError(
            f"--resume: '{partial}' has no fingerprint ({meta_path(output).name}), so it cannot be checked "
            "against these inputs and options",
            "run without --resume to start again",
        ) from None
    changed = [key for key in meta if key != "version" and saved.get(key) != meta[key]]
    if saved.get("version") != meta["version"] or changed:
        raise TaskToolError(
            f"--resume: '{partial}' was written for other inputs or options ({', '.join(changed) or 'version'})",
            "rerun with the inputs and options of that run, or without --resume to start again",
        )
    return partial


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
