"""Expected failures, each shown to the user as one line: what went wrong, where, and how to fix it.

Exit codes: 2 for bad usage or bad input (the user can fix the command or the file), 1 for
failures at run time (out of memory, a model that cannot be loaded, a network error).
"""
from __future__ import annotations


class WacseError(Exception):
    """A failure the user can act on. ``where`` is ``file:line`` or a file name."""

    exit_code = 1

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text}; {self.hint}" if self.hint else text


class UsageError(WacseError):
    """A command line that cannot work: a bad option value or a missing argument."""

    exit_code = 2


class InputError(UsageError):
    """A malformed input file: the message names ``file:line``."""


class ModelError(WacseError):
    """A model that cannot be found or loaded."""


def where(path: object, line: int | None = None) -> str:
    """``path:line`` as shown in messages (line numbers count from 1)."""
    name = "<stdin>" if str(path) == "-" else str(path)
    return name if line is None else f"{name}:{line}"


def was_interrupted(exc: BaseException | None) -> bool:
    """Whether Ctrl-C caused ``exc``: some libraries turn a KeyboardInterrupt raised while they
    import or load into an error of their own, keeping the interrupt as its cause."""
    for _ in range(32):  # a chain of causes is short; a cycle is not followed forever
        if exc is None:
            return False
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
