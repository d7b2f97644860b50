"""Options shared by several commands: the same name, placeholder and help wherever they appear."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

Model = Annotated[Optional[str], typer.Option(
    "--model", "-m", metavar="MODEL", help="Hugging Face model id or local folder.  [required]")]
Pooling = Annotated[Optional[str], typer.Option(
    metavar="cls|mean",
    help="cls (the state at position 0, before any pooler) or mean; default: stored with the model, else its "
         "family's documented setting (e5: mean), else cls.")]
Prefix = Annotated[Optional[str], typer.Option(
    metavar="TEXT", help='Text put before every sentence; default: stored with the model, else its family\'s '
                         '(e5: "query: ").')]
MaxLength = Annotated[Optional[int], typer.Option(
    metavar="TOKENS", help="Longest input in tokens; default: stored with the model, else 128.")]
BatchSize = Annotated[int, typer.Option(metavar="N", help="Sentences per forward pass.")]
Device = Annotated[str, typer.Option(metavar="auto|cpu|cuda", help="Where the model runs.")]
Lang = Annotated[Optional[str], typer.Option(
    metavar="CODE", help="Language code for a model trained with a language embedding.")]
def langs_option(when: str = ""):
    """``--langs SRC,TGT``, with what the languages are needed for in this command."""
    return Annotated[Optional[str], typer.Option(
        metavar="SRC,TGT", help="Language codes of the two sides when the file name (en-kk.tsv) does not give them"
                                + (f"; {when}." if when else "."))]


Langs = langs_option()
Src = Annotated[Optional[str], typer.Option(
    "--src", metavar="FILE", help="Source side as a line-parallel file (with --tgt), instead of a file of pairs.")]
Tgt = Annotated[Optional[str], typer.Option(
    "--tgt", metavar="FILE", help="Target side as a line-parallel file (with --src).")]
OnBadLine = Annotated[str, typer.Option(
    metavar="error|skip", help="error: stop at the first bad line; skip: skip it and count it.")]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
Output = Annotated[str, typer.Option("--output", "-o", metavar="FILE", help="Output file ('-' for standard output).")]
Backend = Annotated[str, typer.Option(
    envvar="WACSE_BACKEND", metavar="BACKEND",
    help="Where the forward pass runs: torch, onnx (onnxruntime, CPU) or onnx-int8 (int8 weights, CPU); auto "
         "(the default) is onnx-int8 on a CPU where onnxruntime is installed (pip install 'wacse[onnx]'), else "
         "torch. The ONNX graphs are exported once per model into the cache.")]


def hidden_alias(name: str, metavar: str = "CODE"):
    """An old option name kept working, but no longer listed in the help."""
    return Annotated[Optional[str], typer.Option(name, metavar=metavar, hidden=True)]


def two_langs(langs: str | None, first: str | None, second: str | None, names: str) -> tuple:
    """The two codes of ``--langs A,B``, or those of the old separate options (``names``), each may be None."""
    from ..errors import UsageError
    from ..io import check_lang, parse_langs

    if langs and (first or second):
        raise UsageError(f"pass --langs or {names}, not both", hint="--langs takes both codes, like en,kk")
    if langs:
        return tuple(parse_langs(langs))
    return tuple(check_lang(code, names) if code else None for code in (first, second))
