"""What every command shares: turning expected failures into one line, and loading the model."""
from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from typing import Any, Callable

import typer

from ..errors import WacseError


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
        except Exception as exc:  # a bug or an environment problem: still one line
            if debug():
                traceback.print_exc()
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            oom = "out of memory" in text.lower()
            hint = "try a smaller --batch-size or --max-length" if oom else "set WACSE_DEBUG=1 for the traceback"
            raise fail(f"{type(exc).__name__}: {text}; {hint}", 1) from None

    return wrapper


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def note(message: str) -> None:
    """A line for the user on stderr (results own stdout)."""
    print(message, file=sys.stderr, flush=True)


def load_model(model: str | None, pooling: str | None, prefix: str | None, max_length: int | None, device: str, **kw):
    from ..errors import UsageError
    from ..model import load_encoder

    if not model:
        raise UsageError("no model given", hint="pass --model with a Hugging Face id or a local folder")
    return load_encoder(model, pooling=pooling, prefix=prefix, max_length=max_length, device=device, **kw)


def load_embedder(model: str | None, pooling: str | None, prefix: str | None, max_length: int | None, device: str,
                  backend: str, **kw):
    """(encoder, forward pass) for the commands that embed: ``forward`` is None for PyTorch, else
    the onnxruntime session of ``--backend`` (exported on first use)."""
    from ..backends import prepare_backend, resolve_backend
    from ..model import resolve_device

    name = resolve_backend(backend, resolve_device(device))  # a bad --backend fails before the model loads
    encoder = load_model(model, pooling, prefix, max_length, device, **kw)
    return encoder, prepare_backend(encoder, model, name)
