"""Several processes (`accelerate launch`, `torchrun`): one shard of the inputs each, one ordered output.

Process r of W takes the inputs whose position i satisfies i % W == r. The records come back to
the main process window by window (gather), where they are interleaved back into input order
and written by the ordinary writers: the output holds exactly one record per input, in input
order, and only the main process writes files or stdout. Memory stays bounded by one window
per process, and no shared filesystem is needed (the records travel over the process group).

On a machine without GPUs the processes join a gloo group on CPU. accelerate's `--cpu` flag
starts ONE process unless MPI is configured, so several CPU processes come from
`accelerate launch --multi_gpu --num_processes N` (torchrun underneath) or `torchrun`.

Importing this module is cheap; torch/accelerate load only inside a multi-process run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from itertools import islice

from tasktool.errors import TaskToolError


def world_size() -> int:
    """Processes in this run, from the launcher's environment (1 for a plain run)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def launched() -> bool:
    return world_size() > 1


def prepare_env() -> None:
    """Before anything builds an accelerate state: on a machine without CUDA, make every consumer
    (our inference and transformers' Trainer) pick the CPU/gloo multi-process setup instead of
    silently running W independent copies; and make sure the process group is torn down before
    the interpreter is (see `destroy_at_exit`)."""
    if not launched():
        return
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    _register_teardown()


_TEARDOWN_REGISTERED = False


def _register_teardown() -> None:
    global _TEARDOWN_REGISTERED
    if not _TEARDOWN_REGISTERED:
        import atexit

        atexit.register(destroy_at_exit)
        _TEARDOWN_REGISTERED = True


def destroy_at_exit() -> None:
    """Destroy the default process group while the interpreter is still whole (atexit).

    Neither accelerate nor transformers destroys it, so without this the gloo process group lives
    into interpreter finalization: its C++ worker threads may still hold finished work whose tensors
    reference Python objects, and freeing them there takes the GIL of an interpreter being torn down,
    which aborts the process (SIGABRT, rank 1 of the two-process test, now and then; the same cause
    as pytorch/pytorch#179291). A no-op when the group is already gone.
    """
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - at exit: nothing left to report to
        pass


class Group:
    """This process's place in the run: rank, size, and the collective operations inference needs."""

    def __init__(self):
        self.rank, self.size, self.local_rank = 0, 1, 0
        self.state = None
        if launched():
            prepare_env()
            import torch
            from accelerate import PartialState

            self.state = PartialState(cpu=not torch.cuda.is_available())
            self.rank, self.size = self.state.process_index, self.state.num_processes
            self.local_rank = self.state.local_process_index
            if self.size != world_size():
                raise TaskToolError(
                    f"the launcher started {world_size()} processes but only {self.size} joined the group",
                    "launch with `accelerate launch --multi_gpu --num_processes N` or `torchrun --nproc_per_node N`",
                )

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, asked: str) -> str:
        """`--device cuda` means this process's own GPU, not GPU 0 for everyone."""
        if self.active and asked == "cuda":
            return f"cuda:{self.local_rank}"
        return asked

    def shard(self, items: Iterable) -> Iterator:
        if not self.active:
            yield from items
            return
        for i, item in enumerate(items):
            if i % self.size == self.rank:
                yield item

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """End of a run: wait until every process is done with the group, then destroy it, so no
        process leaves collective work behind for interpreter shutdown (see `destroy_at_exit`)."""
        global _GROUP
        if self.active:
            self.barrier()
            destroy_at_exit()
        if _GROUP is self:
            _GROUP = None

    def _gather(self, obj) -> list | None:
        import torch.distributed as dist

        out = [None] * self.size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def _broadcast(self, obj):
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def in_order(self, records: Iterable[dict], step: int) -> Iterator[dict]:
        """This shard's records in, every shard's records out (main process only), in input order.

        Every process sends its next `step` records (or the one-line error that stopped it); the
        main process interleaves them back into input order and tells everyone to go on or stop.
        """
        if not self.active:
            yield from records
            return
        iterator = iter(records)
        while True:
            failure = None
            try:
                chunk = list(islice(iterator, step))
            except TaskToolError as exc:
                chunk, failure = [], (exc.message, exc.hint, exc.exit_code)
            gathered = self._gather((chunk, failure))
            verdict = None
            if self.is_main:
                failures = [f for _, f in gathered if f]
                if failures:
                    verdict = ("fail", failures[0])
                elif all(not c for c, _ in gathered):
                    verdict = ("done", None)
                else:
                    verdict = ("go", None)
            verdict = self._broadcast(verdict)
            if verdict[0] == "fail":
                message, hint, code = verdict[1]
                raise TaskToolError(message, hint, exit_code=code)
            if verdict[0] == "done":
                return
            if self.is_main:
                chunks = [c for c, _ in gathered]
                for j in range(max(len(c) for c in chunks)):
                    for c in chunks:
                        if j < len(c):
                            yield c[j]


_GROUP: Group | None = None


def group() -> Group:
    """The run's group, joined once per process."""
    global _GROUP
    if _GROUP is None:
        _GROUP = Group()
    return _GROUP
