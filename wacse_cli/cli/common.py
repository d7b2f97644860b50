"""What every command shares: turning expected failures into one line, and loading the model."""
from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import typer

from ..errors import WacseError, was_interrupted


def debug() -> bool:
    return os.environ.get("WACSE_DEBUG", "") not in ("", "0")


def fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"wacse: error: {message}", err=True)
    return typer.Exit(code)


def report_errors(command: Callable) -> Callable:
    """Expected failures become ``wacse: error: <one line>`` and an exit code, with no traceback
    unless WACSE_DEBUG=1; anything unexpected says so in one line too."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except WacseError as exc:
            if debug():
                traceback.print_exc()
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted; no output was written", 130) from None
        except MemoryError:
            raise fail("out of memory; try a smaller --batch-size or --max-length", 1) from None
        except Exception as exc:  # a bug or an environment problem: still one line, in words
            if debug():
                traceback.print_exc()
            if was_interrupted(exc):
                raise fail("interrupted; no output was written", 130) from None
            raise fail(unexpected(exc), 1) from None

    return wrapper


def unexpected(exc: Exception) -> str:
    """One line for a failure no check foresaw, without Python's name for it."""
    from ..outputs import reason

    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {reason(exc)}; check the path and its permissions"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if "out of memory" in text.lower():
        return f"{text}; try a smaller --batch-size or --max-length"
    return f"unexpected failure ({text or 'no message'}); set WACSE_DEBUG=1 for the traceback and report it"


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def note(message: str) -> None:
    """A line for the user on stderr (results own stdout)."""
    print(message, file=sys.stderr, flush=True)


def local(path: str | None) -> str | None:
    """``path`` when it names something on disk (a model folder), None for a Hub id or nothing."""
    return path if path and Path(path).expanduser().exists() else None


def load_model(model: str | None, pooling: str | None, prefix: str | None, max_length: int | None, device: str,
               *, langs: dict[str, str | None] | None = None, **kw):
    """The encoder; ``langs`` maps options such as ``--lang`` to the codes given, which must be
    language codes (checked before loading) that the model has a language embedding for."""
    from ..errors import UsageError
    from ..io import check_lang
    from ..model import load_encoder

    if not model:
        raise UsageError("no model given", hint="pass --model with a Hugging Face id or a local folder")
    given = {option: check_lang(code, option) for option, code in (langs or {}).items() if code}
    encoder = load_encoder(model, pooling=pooling, prefix=prefix, max_length=max_length, device=device, **kw)
    if encoder.guessed:
        note(f"wacse: {encoder.guessed}")
    for option, code in given.items():
        if encoder.lang_embedding is None:
            raise UsageError(f"{option} {code}: the model {model} has no language embedding",
                             hint=f"leave out {option} (it is for models trained with lang_embedding = true)")
        encoder.lang_id(code)  # a language the embedding has no row for
    return encoder


def load_embedder(model: str | None, pooling: str | None, prefix: str | None, max_length: int | None, device: str,
                  backend: str, **kw):
    """(encoder, forward pass) for the commands that embed: ``forward`` is None for PyTorch, else
    the onnxruntime session of ``--backend`` (exported on first use)."""
    from ..backends import prepare_backend, resolve_backend
    from ..model import resolve_device

    name = resolve_backend(backend, resolve_device(device))  # a bad --backend fails before the model loads
    encoder = load_model(model, pooling, prefix, max_length, device, **kw)
    return encoder, prepare_backend(encoder, model, name, fall_back=backend == "auto")
