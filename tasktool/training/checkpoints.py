"""Checkpoints that are whole or recognisably not: a COMPLETE marker written last, rotation only after it.

transformers writes checkpoint-N file by file and rotates old checkpoints before it returns; here
rotation waits until the marker is down, so a kill at any moment leaves the previous complete
checkpoint in place and the half-written one recognisable; --resume continues from the newest whole one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from tasktool.training.artifacts import fsync

CHECKPOINTS = "checkpoints"
COMPLETE = "COMPLETE"  # written into a checkpoint folder after everything else in it is on disk
# test-only: `N` makes the run stop (sleep) in the middle of saving checkpoint-N, after the weights and
# before the optimizer state, so a test can SIGKILL it there; it touches checkpoint-N/.hanging first
HANG_DURING_SAVE = "TASKTOOL_TEST_HANG_DURING_SAVE"


def step_of(path: Path | None) -> int:
    try:
        return int(path.name.rsplit("-", 1)[-1]) if path else 0
    except ValueError:
        return 0


def checkpoints(ckpt_dir: Path) -> tuple[list[Path], list[Path]]:
    """(complete, partial) checkpoint folders, oldest first; complete ones carry the COMPLETE marker."""
    if not ckpt_dir.is_dir():
        return [], []
    found = sorted((p for p in ckpt_dir.glob("checkpoint-*") if p.is_dir()), key=step_of)
    return [p for p in found if (p / COMPLETE).is_file()], [p for p in found if not (p / COMPLETE).is_file()]


def last_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest complete checkpoint (a kill mid-save leaves a folder without the marker)."""
    complete, _ = checkpoints(ckpt_dir)
    return complete[-1] if complete else None


def pick_checkpoint(ckpt_dir: Path) -> tuple[Path | None, list[Path]]:
    """The checkpoint --resume continues from, and the partial folders it skips (one warning each)."""
    from tasktool.console import warn

    complete, partial = checkpoints(ckpt_dir)
    last = complete[-1] if complete else None
    if last is not None:
        for folder in partial:
            if step_of(folder) > step_of(last):
                warn(
                    f"skipping {folder.name}: incomplete (the run stopped while saving it); "
                    f"resuming from {last.name}, the newest complete checkpoint"
                )
    return last, partial


def mark_complete(folder: Path, step: int) -> None:
    """Flush every file of a checkpoint to disk, then write its COMPLETE marker atomically."""
    for path in folder.rglob("*"):
        if path.is_file() and path.name != COMPLETE:
            fsync(path)
    tmp = folder / (COMPLETE + ".tmp")
    tmp.write_text(json.dumps({"step": step, "time": time.time()}) + "\n", encoding="utf-8")
    fsync(tmp)
    os.replace(tmp, folder / COMPLETE)
    fsync(folder)


def rotate(ckpt_dir: Path, limit: int | None, keep: str | None = None) -> None:
    """Keep the newest `limit` complete checkpoints (and the best one); never the last complete one."""
    if not limit or limit <= 0:
        return
    complete, _ = checkpoints(ckpt_dir)
    protected = {complete[-1]} if complete else set()
    if keep:
        protected.add(Path(keep))
    surplus = len(complete) - max(limit, len(protected))
    for folder in complete:
        if surplus <= 0:
            break
        if folder not in protected:
            shutil.rmtree(folder, ignore_errors=True)
            surplus -= 1


_ATOMIC: dict[type, type] = {}


def atomic_checkpoints(cls: type) -> type:
    """`cls` (Trainer or a subclass) whose checkpoints get a COMPLETE marker once fully written.

    transformers writes checkpoint-N file by file and rotates old checkpoints before it returns;
    here rotation waits until the marker is down, so a kill at any moment leaves the previous
    complete checkpoint in place and the half-written one recognisable.
    """
    if cls not in _ATOMIC:

        class Atomic(cls):
            def _save_checkpoint(self, model, trial):
                limit = self.args.save_total_limit
                self.args.save_total_limit = None  # rotate below, only once the new one is complete
                try:
                    super()._save_checkpoint(model, trial)
                finally:
                    self.args.save_total_limit = limit
                if not self.args.should_save:
                    return
                run_dir = Path(self._get_output_dir(trial=trial))
                mark_complete(run_dir / f"checkpoint-{self.state.global_step}", self.state.global_step)
                rotate(run_dir, limit, self.state.best_model_checkpoint)

            def _save_optimizer_and_scheduler(self, output_dir):
                _hang_if_asked(Path(output_dir), self.state.global_step)
                super()._save_optimizer_and_scheduler(output_dir)

        Atomic.__name__ = Atomic.__qualname__ = "Atomic" + cls.__name__
        _ATOMIC[cls] = Atomic
    return _ATOMIC[cls]


def _hang_if_asked(folder: Path, step: int) -> None:
    """Test hook (see HANG_DURING_SAVE): stop mid-save so a test can kill the process right there."""
    wanted = os.environ.get(HANG_DURING_SAVE)
    if wanted and wanted.strip() == str(step):
        (folder / ".hanging").touch()
        time.sleep(600)
