"""The output folder of a training run: checked before the model loads, created when the run first
writes into it, trimmed to the checkpoint on ``--resume``, and left clean when a run fails.

A run that fails or is interrupted before its first checkpoint leaves nothing behind: the files it
wrote are removed, and so is the folder if the run created it. Once a checkpoint exists the folder
is kept, so that ``--resume`` can continue from it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from .checkpoints import CHECKPOINTS, complete_checkpoints
from .errors import UsageError, WacseError, was_interrupted
from .outputs import check_folder_writable

LOG_FILE = "train_log.jsonl"
RECIPE_FILE = "recipe.toml"
EXPORT_TMP = ".export.partial"


class Interrupted(WacseError):
    """Ctrl-C after a checkpoint was saved: the run can continue with --resume."""

    exit_code = 130


def check_run_folder(out: Path, resume: bool) -> None:
    """A new run needs an empty or new writable folder; ``--resume`` one with a complete checkpoint."""
    check_folder_writable(str(out))
    if out.exists() and not resume and any(out.iterdir()):
        raise UsageError(f"{out} already holds files", hint="pass --resume to continue that run, or choose another -o")
    if resume and not complete_checkpoints(out):
        raise UsageError(f"{out} has no complete checkpoint to resume from", hint="run without --resume")


def checkpoint_steps(out: Path) -> list[int]:
    return [int(folder.name.split("-")[1]) for folder in complete_checkpoints(out)] if out.is_dir() else []


def trim_log(out: Path, step: int) -> None:
    """Keep the log records of steps up to ``step`` (the checkpoint resumed from): the steps run
    again after it are logged again, so each step appears once."""
    path = out / LOG_FILE
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            break  # a line cut off by the interruption
        if isinstance(record, dict) and record.get("step", step + 1) <= step:
            kept.append(line + "\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    tmp.replace(path)


def after_failure(out: Path, created: bool, exc: BaseException) -> None:
    """Clean up after a run that raised ``exc``; an interruption after a checkpoint says how to resume."""
    steps = checkpoint_steps(out)
    if not steps:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for name in (LOG_FILE, RECIPE_FILE):
                (out / name).unlink(missing_ok=True)
            for name in (CHECKPOINTS, EXPORT_TMP):
                shutil.rmtree(out / name, ignore_errors=True)
        return
    if was_interrupted(exc):
        raise Interrupted(f"interrupted; {out} keeps the checkpoint of step {steps[-1]}",
                          hint="run the same command with --resume to continue") from None
