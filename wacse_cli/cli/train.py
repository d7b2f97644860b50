"""``wacse train``: fine-tune an encoder with the WACSE objectives."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import options as opt
from .common import echo_json, local, note, report_errors


@report_errors
def train(
    files: Annotated[Optional[list[str]], typer.Argument(
        help="Parallel text files (en-jv.tsv ...) or multi-way files ('#langs en kk ka' header); default: the recipe's data.")] = None,
    recipe: Annotated[Optional[str], typer.Option("--recipe", "-r", help="Recipe name (see recipes/) or a .toml file.")] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Folder for the model, checkpoints and logs.")] = None,
    model: opt.Model = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda (overrides the recipe).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a recipe field: key=value (repeatable).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the newest complete checkpoint in --output.")] = False,
    on_bad_line: opt.OnBadLine = "error",
    json_out: opt.Json = False,
) -> None:
    """Train: TR + AWP + WTR (weights 0.8/0.1/0.1 by default) on parallel text, with GradCache.

    Optional RTL (--set losses.rtl=0.1); a multi-way file trains TR between every pair of its languages.
    Several GPUs or machines: torchrun --nproc-per-node N -m wacse_cli train ...
    """
    from ..distributed import finish
    from ..outputs import check_paths
    from ..recipe import recipe_path
    from ..train import Trainer
    from ..training_data import data_files

    resolved = resolve_recipe(recipe, set_, model, device)
    out = output or f"runs/{resolved.name}"
    inputs = data_files(resolved, files)
    check_paths([*inputs, recipe and recipe_path(recipe), local(resolved.model)], folder_output=out,
                folder_inputs=inputs)
    trainer = Trainer(resolved, out, files=files, resume=resume, on_bad_line=on_bad_line)
    try:
        result = trainer.run()
    finally:
        finish()  # under torchrun: leave the process group
    if not trainer.ranks.is_main:
        return  # rank 0 reports
    summary = {"output": str(result.output), "steps": result.steps, "best_step": result.best_step,
               "wall_time_s": round(result.wall_time_s, 1), "dev_before": result.dev_before,
               "dev_after": result.dev_after, "nonfinite_steps": result.nonfinite_steps}
    if json_out:
        echo_json(summary)
        return
    typer.echo(format_dev_table(result.dev_before, result.dev_after))
    note(f"model written to {result.output} (best dev step {result.best_step}, {result.wall_time_s / 60:.1f} min)")


def resolve_recipe(recipe: str | None, set_: list[str] | None, model: str | None, device: str | None):
    """The recipe with the --set overrides, then --model and --device; it must name a model."""
    from ..errors import UsageError
    from ..recipe import load_recipe

    overrides = list(set_ or [])
    if model:
        overrides.append(f"model={_quoted(model)}")
    if device:
        overrides.append(f"device={_quoted(device)}")
    resolved = load_recipe(recipe, overrides)
    if not resolved.model:
        raise UsageError("no model given", hint="pass --model or use a recipe that names one")
    return resolved


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_dev_table(before: dict, after: dict) -> str:
    """Dev P@1 (mean of both directions) per language pair, before and after training."""
    lines = ["pair\tpairs\tbefore\tafter"]
    for name, scores in (after.get("pairs") or {}).items():
        old = (before.get("pairs") or {}).get(name, {}).get("mean", float("nan"))
        lines.append(f"{name}\t{scores['n_pairs']}\t{old:.4f}\t{scores['mean']:.4f}")
    if after.get("pairs"):
        lines.append(f"mean\t\t{before.get('mean', float('nan')):.4f}\t{after['mean']:.4f}")
    return "\n".join(lines)
