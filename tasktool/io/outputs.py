"""What a run may write where: outputs never land on an input, and one run at a time writes an output.

- `refuse_overlap`: an output path that resolves (symlinks, `..`, hard links) to an input file, or that
  lies inside an input folder (a model folder, a data folder, a folder of images), is refused before
  anything is read or loaded. A folder output (`finetune --output-dir`) may not hold an input either.
- `OutputLock`: `NAME.lock` beside the output holds the pid of the run writing it, under an OS lock
  (flock), so a second run on the same output refuses at once; a lock file left by a run that died
  (SIGKILL, power loss) holds no OS lock any more and is taken over with a note.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from tasktool.errors import FAILURE, TaskToolError


def real(path: str | Path) -> Path:
    """The path with `~`, `..` and every symlink resolved (it need not exist)."""
    return Path(os.path.realpath(Path(path).expanduser()))


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overlap(output: str | Path, flag: str, inputs, folder: bool = False) -> None:
    """Refuse an output that is, or would write into, one of `inputs` ((name, path) pairs: a file or a
    folder). `folder`: the output is a folder (it may not hold an input either)."""
    out = real(output)
    for name, path in inputs:
        if not path or str(path) == "-":
            continue
        given = Path(path).expanduser()
        if not given.exists():
            continue  # a Hub id or dataset name, not a path
        src = real(given)
        if out == src or _same_file(out, src):
            problem = f"is the {name} itself"
        elif src.is_dir() and _inside(out, src):
            problem = f"lies inside the {name} '{path}'"
        elif folder and _inside(src, out):
            problem = f"holds the {name} '{path}'"
        else:
            continue
        raise TaskToolError(
            f"{flag} '{output}' {problem}: writing there could replace or mix with an input",
            f"choose an {flag} outside the inputs",
        )


def lock_path(output: str | Path) -> Path:
    output = Path(output).expanduser()
    return output.with_name(output.name + ".lock")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8").split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


class OutputLock:
    """An exclusive lock on an output (a file or a folder) for the life of a run; a context manager."""

    def __init__(self, output: str | Path, flag: str = "--output"):
        self.output, self.flag = Path(output), flag
        self.path = lock_path(output)
        self.fd: int | None = None

    def acquire(self) -> OutputLock:
        for _ in range(20):  # the lock file may be removed under us by the run that held it
            if self._try_once():
                return self
        raise TaskToolError(f"cannot lock '{self.output}'", "try again", exit_code=FAILURE)

    def _busy(self, pid: int | None) -> TaskToolError:
        who = f" (pid {pid})" if pid else ""
        return TaskToolError(
            f"'{self.output}' is being written by another tasktool run{who}",
            f"wait for it to finish, or choose another {self.flag}",
            exit_code=FAILURE,
        )

    def _try_once(self) -> bool:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: the lock file alone, created exclusively
            return self._exclusive_create()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise TaskToolError(
                f"cannot create the lock file '{self.path}': {exc.strerror}",
                f"check that the folder of {self.flag} is writable",
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise self._busy(_read_pid(self.path)) from None
            raise
        # the holder may have removed the file between our open and our lock: lock the file on disk
        try:
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return False
        stale = _read_pid(self.path)
        if stale and stale != os.getpid():
            from tasktool.console import warn

            state = "no longer running" if not _pid_alive(stale) else "no longer holding it"
            warn(f"taking over the lock '{self.path.name}' left by pid {stale} ({state})")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def _exclusive_create(self) -> bool:  # pragma: no cover - non-POSIX fallback
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pid = _read_pid(self.path)
            if pid and _pid_alive(pid):
                raise self._busy(pid) from None
            from tasktool.console import warn

            warn(f"taking over the lock '{self.path.name}' left by pid {pid} (no longer running)")
            self.path.unlink(missing_ok=True)
            return False
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still locked: a waiting run then retries
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False
