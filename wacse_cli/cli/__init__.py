"""The ``wacse`` command line: parses options and calls the library; no logic of its own."""
from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from .. import __version__
from .align import align
from .bootstrap import bootstrap
from .demo import demo
from .embed import embed
from .eval import eval_app
from .filter import filter_pairs
from .help import SUMMARIES, command_options
from .mine import mine
from .push import push
from .search import search
from .train import train

app = typer.Typer(
    name="wacse",
    help="Cross-lingual sentence encoders for low-resource languages, trained with word alignment (WACSE).",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"wacse {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version.")
    ] = None,
) -> None:
    """Cross-lingual sentence encoders for low-resource languages, trained with word alignment (WACSE)."""


for _name, _command in (("embed", embed), ("search", search), ("mine", mine), ("filter", filter_pairs),
                        ("bootstrap", bootstrap), ("align", align), ("push", push), ("train", train), ("demo", demo)):
    app.command(_name, **command_options(_name))(_command)
app.add_typer(eval_app, name="eval", short_help=SUMMARIES["eval"])


def main(argv: list[str] | None = None) -> int:
    """Console entry point: click's own usage errors become one line too."""
    try:
        code = app(args=argv, prog_name="wacse", standalone_mode=False)
    except KeyboardInterrupt:
        print("wacse: error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:  # bare `wacse` or `wacse eval`
            print(ctx.get_help())
            return 0
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):  # click's usage errors
            path = ctx.command_path if ctx is not None else "wacse"
            print(f"wacse: error: {exc.format_message()} (see '{path} --help')", file=sys.stderr)
            return int(exc.exit_code)
        if type(exc).__name__ == "Abort":
            print("wacse: error: aborted", file=sys.stderr)
            return 1
        raise
    return code if isinstance(code, int) else 0
