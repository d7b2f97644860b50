"""Where a command may write: never over one of its inputs, and only where writing works.

Every command calls :func:`check_paths` first, before it reads a line or loads a model, so a
mistyped ``-o`` fails at once with one line and leaves every file as it was. An output is refused
when it is the same file as an input however it is spelt: a relative path, a symbolic link, or a
hard link (same device and inode). A file output's folder must already exist (wacse never creates
it); a folder output (``wacse train``, ``wacse demo``) is created, with its parents, when the run
first writes into it.
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Iterable

from .errors import UsageError

STDIN = "-"


def check_paths(inputs: Iterable[str | None], outputs: Iterable[str | None] = (), *,
                folder_output: str | None = None, folder_inputs: Iterable[str | None] = ()) -> None:
    """Refuse, in one line each: standard input named twice; an output that is an input (or an
    existing file inside an input folder, such as the model's); an output that cannot be written.

    ``folder_output`` is a folder the command fills (train); ``folder_inputs`` are inputs that may
    not lie inside it (its training files), beside the ``inputs`` it may not be.
    """
    inputs = [str(p) for p in inputs if p]
    check_stdin_once(inputs)
    for output in (str(p) for p in outputs if p and p != STDIN):
        check_not_input(output, inputs)
        check_file_writable(output)
    if folder_output:
        check_folder_not_input(folder_output, inputs, [str(p) for p in folder_inputs if p])
        check_folder_writable(folder_output)


def check_stdin_once(inputs: list[str]) -> None:
    if sum(p == STDIN for p in inputs) > 1:
        raise UsageError("standard input ('-') can stand for only one input", hint="save the other inputs to files")


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file: equal once resolved, or the same device and inode."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def inside(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` lies (after resolving links) somewhere below ``folder``."""
    root = os.path.realpath(folder).rstrip(os.sep) + os.sep
    return os.path.realpath(path).startswith(root)


def is_special(path: str | Path) -> bool:
    """A device, named pipe or socket (``/dev/null``, ``/dev/stdout``): written in place, never replaced."""
    target = Path(path)
    return target.exists() and not target.is_file() and not target.is_dir()


def check_not_input(output: str, inputs: list[str]) -> None:
    if is_special(output):
        return  # writing to a pipe or a terminal destroys no file
    for source in inputs:
        if source == STDIN:
            continue
        if same_file(output, source):
            raise UsageError(_overwrites(output, source), hint="write the output to another file (-o)")
        if Path(source).is_dir() and Path(output).exists() and inside(output, source):
            raise UsageError(f"the output {output} would overwrite a file of the input folder {source}",
                             hint="write the output outside that folder (-o)")


def check_folder_not_input(folder: str, inputs: list[str], contents: list[str]) -> None:
    for source in inputs + contents:
        if source != STDIN and same_file(folder, source):
            raise UsageError(f"the output folder {folder} is the input {source}",
                             hint="choose a new folder for the output (-o)")
    for source in contents:
        if source != STDIN and inside(source, folder):
            raise UsageError(f"the input {source} lies inside the output folder {folder}",
                             hint="keep inputs outside the output folder, or choose another -o")


def _overwrites(output: str, source: str) -> str:
    if output == source:
        return f"the output {output} is also an input; writing it would destroy the input"
    return f"the output {output} is the same file as the input {source}; writing it would destroy the input"


def check_file_writable(path: str) -> None:
    """A file output: not a folder, in a folder that exists and takes new files."""
    target = Path(path)
    if is_special(path):
        return
    if target.is_dir():
        raise UsageError(f"{path}: is a folder", hint="pass a file name for the output")
    folder = target.parent
    if not folder.exists():
        raise UsageError(f"{path}: folder {folder} does not exist", hint="create it first")
    if not folder.is_dir():
        raise UsageError(f"{path}: {folder} is a file, not a folder", hint="choose another output path")
    _probe(folder, path)


def check_folder_writable(path: str) -> None:
    """A folder output: a folder (or nothing yet) below a folder that takes new files."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{path}: is a file, not a folder", hint="pass a folder for the output (-o)")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{path}: {existing} is a file, not a folder", hint="choose another output folder (-o)")
    _probe(existing, path)


def _probe(folder: Path, path: str) -> None:
    """Create and delete a file in ``folder``: the only test that sees read-only mounts, immutable
    folders and pseudo-filesystems alike, whoever runs the command."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".wacse-probe.", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write in {folder} ({reason(exc)})",
                         hint="choose a writable place for the output (-o)") from None


def reason(exc: OSError) -> str:
    """An OS error in words, without its class name or errno number."""
    if exc.errno == errno.ENOENT:
        return "files cannot be created there"
    return (exc.strerror or "not allowed").lower()
