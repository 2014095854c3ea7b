"""One error type for everything the user can fix; the CLI renders it once, as one line."""

from __future__ import annotations

USAGE = 2  # the command line or its inputs are wrong
FAILURE = 1  # the run itself failed
INTERRUPTED = 130


class TaskToolError(Exception):
    """A problem the user can act on: ``message`` says what is wrong, ``hint`` what to do."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = USAGE):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        if self.hint:
            text += f" ({' '.join(self.hint.split())})"
        return text


class ItemError(TaskToolError):
    """One input item could not be processed (corrupt file, empty text); others may go on."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, hint, exit_code=FAILURE)


def first_line(exc: BaseException) -> str:
    """A library exception's first line (its message can run to pages), or its type when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def nearest(word: str, choices, n: int = 1) -> list[str]:
    """Closest spellings, for 'did you mean' hints."""
    import difflib

    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.4)
