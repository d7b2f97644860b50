"""``wacse demo``: align, train and evaluate on a bundled sample, offline, in minutes."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import options as opt
from .common import local, note, report_errors
from .train import format_dev_table


@report_errors
def demo(
    output: Annotated[Optional[str], typer.Option("--output", "-o", metavar="FOLDER", help="Folder for the trained model (default: in the cache).")] = None,
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", metavar="FOLDER", help="A tiny model folder to train instead of building one.")] = None,
    steps: Annotated[Optional[int], typer.Option(metavar="N", help="Training steps (default: the demo recipe's).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE", help="Override a demo recipe field: key=value.")] = None,
    recipe: Annotated[str, typer.Option("--recipe", "-r", metavar="NAME", help="demo (TR + AWP + WTR on pairs) or multiway-demo "
                                        "(TR between every pair of five languages).")] = "demo",
) -> None:
    """Train a tiny model from scratch on bundled English-kk/ka/jv/tl pairs and show what changed."""
    from ..demo import is_multiway_demo, run_demo
    from ..outputs import check_paths

    check_paths([local(model)], folder_output=output)
    overrides = list(set_ or []) + ([f"steps={steps}"] if steps else [])
    what = ("multi-way rows, TR between every pair of languages" if is_multiway_demo(recipe)
            else "word alignments, TR + AWP + WTR")
    note(f"wacse demo: a tiny model, the bundled CLDR sample (Unicode License v3), {what}")
    if not model:
        note("the tiny model starts from random weights: a toy that shows the pipeline at work, not the accuracy "
             "of a real encoder (for that: wacse train --recipe cpu-small)")
    result, pairs, held_out = run_demo(output, model, overrides, recipe_name=recipe)
    typer.echo("dev P@1 (mean of both directions; used to choose the best step):")
    typer.echo(format_dev_table(result.dev_before, result.dev_after))
    if held_out:
        typer.echo("\nheld-out P@1 (pairs neither trained on nor used to choose the step):")
        typer.echo(format_dev_table(*held_out))
    if pairs:
        typer.echo("\nword pairs the trained model aligns, confirmed by the sample's one-word entries:")
        for line in pairs[:-1] or ["(none)"]:
            typer.echo(line)
        note(pairs[-1])
    note(f"model written to {result.output} ({result.wall_time_s / 60:.1f} min); try: wacse embed FILE -m {result.output}")
