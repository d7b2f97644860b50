"""``wacse train``: fine-tune an encoder with the WACSE objectives."""
from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from . import options as opt
from .common import echo_json, local, note, report_errors


def _list_recipes(value: bool) -> None:
    if value:
        from ..recipe import recipe_descriptions

        for name, description in recipe_descriptions().items():
            typer.echo(f"{name}\t{description}")
        raise typer.Exit()


@report_errors
def train(
    files: Annotated[Optional[list[str]], typer.Argument(
        metavar="FILE", show_default=False,
        help="Parallel text files (en-jv.tsv ..., '-' for standard input) or multi-way files ('#langs en kk ka' "
             "header); default: the recipe's data.")] = None,
    recipe: Annotated[Optional[str], typer.Option(
        "--recipe", "-r", metavar="NAME|FILE", help="Recipe name (see --list-recipes) or a .toml file; without one, "
        "the built-in defaults (TR + AWP + WTR, 0.8/0.1/0.1: translation ranking, aligned word prediction and word "
        "translation ranking).")] = None,
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", metavar="FOLDER", show_default=False,
        help="Folder for the model, checkpoints and logs; default: runs/RECIPE.")] = None,
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", metavar="MODEL", help="Hugging Face model id or local folder; default: the recipe's.")] = None,
    langs: opt.Langs = None,
    src: opt.Src = None,
    tgt: opt.Tgt = None,
    alignments: Annotated[Optional[str], typer.Option(
        metavar="FILE", help="Word alignments to train on, as wacse align -o writes them (en-{lang}.align for "
                             "several files); default: align as the recipe says.")] = None,
    device: Annotated[Optional[str], typer.Option(
        metavar="auto|cpu|cuda", help="Where to train (overrides the recipe).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help="Override a recipe field (repeatable), like losses.awp=0.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the newest complete checkpoint in --output.")] = False,
    on_bad_line: opt.OnBadLine = "error",
    json_out: opt.Json = False,
    list_recipes: Annotated[Optional[bool], typer.Option(
        "--list-recipes", callback=_list_recipes, is_eager=True, help="List the recipes and exit.")] = None,
) -> None:
    """Fine-tune an encoder with TR + AWP + WTR (weights 0.8/0.1/0.1 by default) on parallel text.

    Optional RTL (--set losses.rtl=0.1); a multi-way file trains TR between every pair of its languages.
    Prints dev P@1 on stderr at each evaluation; the output folder holds the model, recipe.toml (the
    recipe as run), wacse.json, train_log.jsonl and a model card.

    \b
    Several GPUs or machines:
      torchrun --nproc-per-node N -m wacse_cli train ...
    """
    from ..distributed import finish
    from ..io import check_src_tgt
    from ..outputs import check_paths
    from ..recipe import recipe_path
    from ..train import Trainer
    from ..training_data import data_files

    check_src_tgt(src, tgt)
    extra = alignment_overrides(alignments, len(files or []) + bool(src)) if alignments else []
    resolved = resolve_recipe(recipe, set_, model, device, extra)
    out = output or f"runs/{resolved.name}"
    inputs = (data_files(resolved, files) if files or not src else []) + ([src, tgt] if src else [])
    check_paths([*inputs, alignments, recipe and recipe_path(recipe), local(resolved.model)], folder_output=out,
                folder_inputs=inputs)
    trainer = Trainer(resolved, out, files=files, resume=resume, on_bad_line=on_bad_line, langs=langs,
                      src_tgt=(src, tgt) if src else None, on_step=None if json_out else _dev_line(resolved.steps),
                      on_note=note)
    try:
        result = trainer.run()
    except BaseException:
        finish()  # under torchrun: leave the process group
        raise
    finish(completed=True)
    if not trainer.ranks.is_main:
        return  # rank 0 reports
    summary = {"output": str(result.output), "steps": result.steps, "best_step": result.best_step,
               "wall_time_s": round(result.wall_time_s, 1), "dev_before": result.dev_before,
               "dev_after": result.dev_after, "nonfinite_steps": result.nonfinite_steps,
               "skipped_lines": trainer.skipped_lines}
    if json_out:
        echo_json(summary)
        return
    typer.echo(format_dev_table(result.dev_before, result.dev_after))
    if trainer.skipped_lines:
        note(f"{trainer.skipped_lines} bad input line(s) skipped (--on-bad-line skip)")
    note(f"model written to {result.output} (best dev step {result.best_step}, {result.wall_time_s / 60:.1f} min)")


def resolve_recipe(recipe: str | None, set_: list[str] | None, model: str | None, device: str | None,
                   extra: list[str] = ()):
    """The recipe with the --set overrides, then --model, --device and ``extra``; it must name a model."""
    from ..errors import UsageError
    from ..recipe import load_recipe

    overrides = list(set_ or [])
    if model:
        overrides.append(f"model={_quoted(model)}")
    if device:
        overrides.append(f"device={_quoted(device)}")
    resolved = load_recipe(recipe, overrides + list(extra))
    if not resolved.model:
        raise UsageError("no model given", hint="pass --model or use a recipe that names one")
    return resolved


def alignment_overrides(path: str, n_files: int) -> list[str]:
    """``--alignments FILE``: the recipe's ``align.aligner = "file"`` mode, reading FILE."""
    from ..errors import UsageError

    if "{lang}" not in path:
        if n_files > 1:
            raise UsageError(f"one --alignments file for {n_files} training files",
                             hint="pass a pattern like en-{lang}.align, {lang} being each file's target language")
        path = path.replace("{", "{{").replace("}", "}}")
    return ['align.aligner="file"', f"align.files={_quoted(path)}"]


def _dev_line(steps: int):
    """Prints dev P@1 on stderr at each evaluation, above the progress bar."""
    from tqdm import tqdm

    def on_step(step: int, record: dict) -> None:
        dev = record.get("dev")
        if dev and dev.get("pairs"):
            tqdm.write(f"step {step}/{steps}: dev P@1 {dev['mean']:.4f}", file=sys.stderr)

    return on_step


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
