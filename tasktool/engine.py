"""The batching engine every task's inference runs through.

Inputs stream in; a window of them is prepared, sorted by length and cut into batches padded
only to their own longest item; results go back out in input order, window by window, so
memory stays bounded however long the input is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from tasktool.errors import ItemError, TaskToolError
from tasktool.io.records import Item, short

__all__ = ["Engine", "Item", "Predictor", "batches", "batch_workers"]


# A batch stops growing before padding would be more than this share of its tokens: sorted inputs
# of real text have a long tail (a few sentences 10x the median), and one of them padding a full
# batch costs more than the rest of the run's padding together (benchmarks/onnx_speed.py).
MAX_PADDING = 0.5


class Predictor:
    """Task-specific inference. The engine calls prepare per item, then predict per batch."""

    window: int | None = None  # items prepared at once; media tasks keep it small (decoded inputs are big)
    # --batch-size when none is given; generators take more (a decode step's cost is mostly reading the
    # weights, whatever the rows: benchmarks/generation.py)
    default_batch_size: int = 8
    # the most padding a batch may hold (a share of its tokens); generators set None: their cost is
    # the decode steps, whatever the prompts' padding, and a smaller batch only adds steps
    max_padding: float | None = MAX_PADDING

    @classmethod
    def default_batch_for(cls, model: str) -> int:
        """--batch-size when none is given, for this model (default_batch_size unless a task says)."""
        return cls.default_batch_size

    def cpu_batching(self) -> tuple[int, int] | None:
        """(rows, padded tokens) a batch holds at most when neither --batch-size nor --max-batch-tokens
        is given and the model runs on a CPU; None: default_batch_size rows, no token budget."""
        return None

    def prepare(self, payload: Any) -> Any:
        """Decode/tokenize one input. Raise ItemError for a bad item."""
        return payload

    def prepare_many(self, payloads: list[Any]) -> list[Any]:
        """Prepare a window of inputs at once; a bad item's slot holds its ItemError instead.

        The default calls prepare per item; text predictors override it to tokenize a whole
        window in one batched call (the per-call overhead is most of a short input's cost).
        """
        out: list[Any] = []
        for payload in payloads:
            try:
                out.append(self.prepare(payload))
            except TaskToolError as exc:
                if not isinstance(exc, ItemError):
                    raise
                out.append(exc)
            except Exception as exc:  # noqa: BLE001 - any failure on one input is that input's error
                out.append(_item_error(exc))
        return out

    def length(self, prepared: Any) -> int:
        """A cost estimate (tokens, samples, pixels) used to sort and to budget batches."""
        return 1

    def concurrent_batches(self) -> bool:
        """Whether predict may run on several threads at once (no shared state it changes).

        On a CPU, two batches in flight on half the cores each beat one batch on all of them:
        small ops stop waiting on each other's thread barriers, and one batch's Python work
        overlaps the other's matmuls. Predictors that are safe to share say so here.
        """
        return False

    def predict(self, batch: list[Any]) -> list[dict]:
        raise NotImplementedError

    rechecks: bool = False  # takes --recheck-margin (an int8 classifier: tasktool.tasks.recheck)

    def run_note(self) -> str | None:
        """One line shown after the run's record count (not with --quiet), where the task has one."""
        return None

    def display(self, record: dict) -> dict[str, str]:
        """Columns for the people-facing table; the default shows every result field."""
        return {k: short(v) for k, v in record.items() if k not in ("id", "input")}


def batches(
    order: list[tuple[int, Any, int]],
    batch_size: int,
    max_batch_tokens: int | None,
    max_padding: float | None = MAX_PADDING,
):
    """Cut length-sorted items into batches by count, or by padded-token budget, with at most
    `max_padding` of a batch's tokens padding (None: no limit)."""
    limit = 1.0 if max_padding is None else max_padding
    batch: list = []
    longest = real = 0
    for entry in order:
        longest_if = max(longest, entry[2])
        padded_if = longest_if * (len(batch) + 1)
        if batch and (
            len(batch) >= batch_size
            or (max_batch_tokens and padded_if > max_batch_tokens)
            or real + entry[2] < (1 - limit) * padded_if
        ):
            yield batch
            batch, longest_if, real = [], entry[2], 0
        batch.append(entry)
        longest = longest_if
        real += entry[2]
    if batch:
        yield batch


class Interrupted(TaskToolError):
    def __init__(self):
        from tasktool.errors import INTERRUPTED

        super().__init__(
            "interrupted",
            "finished records were written; rerun with --resume to continue",
            exit_code=INTERRUPTED,
        )


# How allocators say they ran out: CUDA ("CUDA out of memory"), MPS, and the CPU allocator
# ("DefaultCPUAllocator: can't allocate memory: you tried to allocate ...", "not enough memory").
OOM_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory")


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(m in text for m in OOM_MESSAGES)


def _item_error(exc: BaseException) -> ItemError:
    """Any failure on one input, as that input's error: its type and first line, no traceback."""
    if isinstance(exc, ItemError):
        return exc
    if _is_oom(exc):
        return ItemError("out of memory on this input alone", "shorten it, or lower --max-length")
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    error = ItemError(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)
    error.__cause__ = exc
    return error


def _finite_or_error(result: dict) -> tuple[dict, str | None]:
    """A result holding NaN or Infinity (a NaN audio clip, an overflow in half precision) keeps
    its fields as null (JSON has no NaN) and says which were not finite."""
    from tasktool.io.records import non_finite

    bad = non_finite(result)
    if not bad:
        return result, None
    return result, f"the model returned a non-finite number (NaN or Infinity) in {', '.join(bad[:5])}"


class Engine:
    def __init__(
        self,
        predictor: Predictor,
        batch_size: int = 8,
        max_batch_tokens: int | None = None,
        window: int | None = None,
        on_error: str = "raise",
        on_batch=None,
        workers: int | None = None,
    ):
        if batch_size < 1:
            raise TaskToolError("--batch-size must be at least 1")
        if workers is not None and workers < 1:
            raise TaskToolError("--workers must be at least 1", "use 1 to run one batch at a time")
        self.predictor = predictor
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.window = window or predictor.window or max(1024, batch_size * 64)
        self.on_error = on_error
        self.on_batch = on_batch  # progress callback: number of items finished
        self.stop = False  # set from a signal handler: finish the current batch, write what is in order, stop
        self.workers = batch_workers(predictor, workers)

    def run(self, items: Iterable[Item]) -> Iterator[dict]:
        iterator = iter(items)
        while True:
            chunk = list(islice(iterator, self.window))
            if not chunk:
                return
            yield from self._run_window(chunk)

    def _fail(self, item: Item, exc: ItemError, errors: dict, idx: int):
        if self.on_error == "raise":
            raise TaskToolError(
                f"input {item.id!r}: {exc.message}",
                exc.hint or "fix it or pass --on-error skip",
                exit_code=exc.exit_code,
            ) from exc
        errors[idx] = exc.one_line()

    def _prepare(self, chunk: list[Item]) -> list:
        """prepare_many for the window; where it fails as a whole (a tokenizer that cannot encode one
        text fails the batched call), the items are prepared one by one so the failure stays with
        its own input."""
        payloads = [item.payload for item in chunk]
        try:
            return self.predictor.prepare_many(payloads)
        except (TaskToolError, KeyboardInterrupt):
            raise
        except Exception:  # noqa: BLE001 - isolated below, item by item
            pass
        out: list = []
        for payload in payloads:
            try:
                out.append(self.predictor.prepare(payload))
            except (KeyboardInterrupt, TaskToolError) as exc:
                if not isinstance(exc, ItemError):
                    raise
                out.append(exc)
            except Exception as exc:  # noqa: BLE001 - one input's failure
                out.append(_item_error(exc))
        return out

    def _run_window(self, chunk: list[Item]) -> Iterator[dict]:
        from tasktool import threads

        errors: dict[int, str] = {}
        order = []
        prepared_all = self._prepare(chunk)
        length = self.predictor.length
        for idx, (item, prepared) in enumerate(zip(chunk, prepared_all, strict=True)):
            if isinstance(prepared, ItemError):
                self._fail(item, prepared, errors, idx)
            else:
                order.append((idx, prepared, int(length(prepared))))
        order.sort(key=lambda e: e[2], reverse=True)  # longest first: the worst batch fails early
        results: dict[int, dict] = {}
        padding = getattr(self.predictor, "max_padding", MAX_PADDING)  # duck-typed predictors: the default
        cut = batches(order, self.batch_size, self.max_batch_tokens, padding)
        if self.workers > 1:
            self._predict_concurrently(cut, results, errors, chunk)
        else:
            with threads.no_grad():
                for batch in cut:
                    self._predict(batch, results, errors, chunk)
                    if self.on_batch:
                        self.on_batch(len(batch))
                    if self.stop:
                        break
        for idx, item in enumerate(chunk):
            # stopped: only the finished, in-order prefix goes out
            if idx not in errors and idx not in results:
                raise Interrupted()
            record = {"id": item.id, "input": item.shown()}
            if idx in errors:
                record["error"] = errors[idx]
            else:
                result, problem = _finite_or_error(results[idx])
                if problem:
                    self._fail(item, ItemError(problem, "check this input"), errors, idx)
                    record["error"] = errors[idx]
                record.update(result)
            yield record
        if self.stop:
            raise Interrupted()

    def _predict_concurrently(self, cut, results, errors, chunk):
        """Batches on `workers` threads, each with its share of the CPU threads; a few in flight at most."""
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        from tasktool import threads

        def work(batch):
            with threads.no_grad():  # thread-local: each worker enters its own
                self._predict(batch, results, errors, chunk)
            return len(batch)

        def finish(done):
            for future in done:
                n = future.result()  # a worker's exception surfaces here, in the engine's thread
                if self.on_batch:
                    self.on_batch(n)

        count = threads.get()
        threads.set_count(max(1, count // self.workers))  # process-wide, as thread_share: restored below
        pending: set = set()
        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="tasktool-batch") as pool:
                try:
                    for batch in cut:
                        if self.stop:
                            break
                        if len(pending) >= 2 * self.workers:
                            done, pending = wait(pending, return_when=FIRST_COMPLETED)
                            finish(done)
                        pending.add(pool.submit(work, batch))
                    while pending:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        finish(done)
                except BaseException:
                    for future in pending:
                        future.cancel()
                    raise
        finally:
            threads.set_count(count)

    def _predict(self, batch, results, errors, chunk):
        """Predict a batch; a failure is narrowed down to the input that causes it (see _narrow)."""
        try:
            outputs = self.predictor.predict([entry[1] for entry in batch])
        except Exception as exc:  # noqa: BLE001 - narrowed down to an input, or re-raised, below
            if isinstance(exc, TaskToolError) and not isinstance(exc, ItemError):
                raise
            self._narrow(batch, exc, results, errors, chunk)
            return
        for entry, out in zip(batch, outputs, strict=True):
            results[entry[0]] = out

    def _narrow(self, batch, exc, results, errors, chunk):
        """Out of memory (CUDA's or the CPU allocator's words, or MemoryError) halves the batch, down to
        one item; any other failure retries the batch's items one by one. A failure of one item alone
        is that item's error (its record under --on-error skip). When every item of a batch fails
        alone with an unexpected error, the fault is not in the inputs: the run stops with it."""
        if len(batch) == 1:
            if _is_oom(exc):
                _empty_cache()
            self._fail(chunk[batch[0][0]], _item_error(exc), errors, batch[0][0])
            return
        if _is_oom(exc):
            from tasktool.console import warn

            _empty_cache()
            half = len(batch) // 2
            warn(
                f"out of memory on a batch of {len(batch)}: "
                f"retrying as two batches of {half} and {len(batch) - half}"
            )
            self._predict(batch[:half], results, errors, chunk)
            self._predict(batch[half:], results, errors, chunk)
            return
        failed = []
        for entry in batch:
            try:
                results[entry[0]] = self.predictor.predict([entry[1]])[0]
            except Exception as one:  # noqa: BLE001 - this input's failure
                if isinstance(one, TaskToolError) and not isinstance(one, ItemError):
                    raise
                failed.append((entry, one))
        if len(failed) == len(batch) and not any(isinstance(e, ItemError) for _, e in [(None, exc), *failed]):
            raise exc
        for entry, one in failed:
            if _is_oom(one):
                _empty_cache()
            self._fail(chunk[entry[0]], _item_error(one), errors, entry[0])


def batch_workers(predictor: Predictor, requested: int | None) -> int:
    """How many batches run at once: `requested`, or on a multi-threaded CPU run 2 where the predictor
    allows it (faster than one batch on all cores, same labels; figures: benchmarks/README.md); else 1."""
    return _workers(predictor.concurrent_batches(), requested)


def _workers(concurrent: bool, requested: int | None) -> int:
    if not concurrent:
        return 1
    if requested is not None:
        return requested
    from tasktool import threads

    return 2 if threads.get() >= 2 else 1


def thread_share(concurrent: bool, requested: int | None) -> int:
    """The intra-op threads each batch will run with: its share of the cores where the engine will run
    batches concurrently (`concurrent`: the predictor will allow it), else all of them. Known before the
    model loads, so an exported model opens its one session at that size."""
    from tasktool import threads

    return max(1, threads.get() // _workers(concurrent, requested))


def _empty_cache():
    import sys

    torch = sys.modules.get("torch")  # no torch loaded (ONNX Runtime alone): no CUDA cache to free
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
