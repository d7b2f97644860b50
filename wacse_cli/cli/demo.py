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
        "--model", "-m", metavar="MODEL", help="The model to train: a tiny model folder instead of building one, or "
        "with --real a real encoder (default: intfloat/multilingual-e5-small, from the cache or the Hub).")] = None,
    real: Annotated[bool, typer.Option("--real", help="Fine-tune multilingual-e5-small (TR + WTR) instead of the toy "
                                       "model: a real before/after, a few minutes on a CPU.")] = False,
    steps: Annotated[Optional[int], typer.Option(metavar="N", help="Training steps (default: the demo recipe's).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE", help="Override a demo recipe field: key=value.")] = None,
    recipe: Annotated[str, typer.Option("--recipe", "-r", metavar="NAME", help="demo (TR + AWP + WTR on pairs) or multiway-demo "
                                        "(TR between every pair of five languages).")] = "demo",
) -> None:
    """Train a model on bundled English-kk/ka/jv/tl pairs and show what changed: a tiny toy from scratch, or
    with --real multilingual-e5-small."""
    from ..demo import REAL_DEMO_RECIPE, check_real_model, is_multiway_demo, real_demo_model, real_encoder_cached, run_demo
    from ..outputs import check_paths

    check_paths([local(model)], folder_output=output)
    if real and recipe != "demo":
        from ..errors import UsageError
        raise UsageError("--real fine-tunes on the sample's pairs, not with another recipe", hint="leave --recipe out")
    recipe = REAL_DEMO_RECIPE if real else recipe
    if real:
        check_real_model(real_demo_model(model))
    overrides = list(set_ or []) + ([f"steps={steps}"] if steps else [])
    what = ("multi-way rows, TR between every pair of languages" if is_multiway_demo(recipe)
            else "word alignments, TR + WTR" if real else "word alignments, TR + AWP + WTR")
    who = real_demo_model(model) if real else "a tiny model"
    note(f"wacse demo: {who}, the bundled CLDR sample (Unicode License v3), {what}")
    note(f"this takes about {2.5 if real else 2} minutes on an idle 2-core CPU (less with more cores); "
         "the training bar shows the time left")
    if not model and not real:
        note("the tiny model starts from random weights: a toy that shows the pipeline at work, not the accuracy "
             "of a real encoder (for that: wacse demo --real" + (", whose model is in your cache)" if real_encoder_cached()
                                                                  else ", or wacse train --recipe cpu-small)"))
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
