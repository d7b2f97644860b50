"""``wacse bootstrap``: grow a language pair's training data from a seed and monolingual text."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import options as opt
from .common import echo_json, local, note, report_errors
from .train import resolve_recipe


@report_errors
def bootstrap(
    seed: Annotated[str, typer.Argument(help="Seed pairs (src<TAB>tgt), e.g. en-kk.tsv: their dev split is never trained on.")],
    src: Annotated[str, typer.Option("--src", help="Monolingual source sentences, one per line.")],
    tgt: Annotated[str, typer.Option("--tgt", help="Monolingual target sentences, one per line.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Folder for the rounds (round-N/) and wacse.json.")],
    model: opt.Model = None,
    recipe: Annotated[str, typer.Option("--recipe", "-r", help="Training recipe of every round (name or .toml).")] = "cpu-small",
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a recipe field: key=value (repeatable).")] = None,
    rounds: Annotated[int, typer.Option(help="Mining rounds after round 0 (training on the seed alone).")] = 2,
    precision: Annotated[float, typer.Option(help="Target precision of the filter that mined pairs pass.")] = 0.95,
    neighbours: Annotated[int, typer.Option("-k", help="Neighbours for the margin, in both directions.")] = 4,
    init: Annotated[str, typer.Option(help="Train each round from the base model (base) or the last round's (previous).")] = "base",
    langs: opt.Langs = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda (overrides the recipe).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue after the last finished round in --output.")] = False,
    on_bad_line: opt.OnBadLine = "error",
    json_out: opt.Json = False,
) -> None:
    """Train on the seed, then per round: mine the monolingual files with the current model, filter,
    add the kept pairs, retrain; stop after --rounds or when dev P@1 falls."""
    import json
    from pathlib import Path

    from ..bootstrap import INITS, Bootstrap, BootstrapSettings, load_round_model, round_table, split_seed, train_round
    from ..errors import UsageError
    from ..io import read_parallel, read_sentences
    from ..outputs import check_paths

    if rounds < 0:
        raise UsageError(f"--rounds must be at least 0, not {rounds}")
    if not 0 < precision < 1:
        raise UsageError(f"--precision must be between 0 and 1 (exclusive), not {precision}")
    if neighbours < 1:
        raise UsageError(f"-k must be at least 1, not {neighbours}")
    if init not in INITS:
        raise UsageError(f"--init must be base or previous, not '{init}'")
    resolved = resolve_recipe(recipe, set_, model, device)
    check_paths([seed, src, tgt, local(resolved.model)], folder_output=output, folder_inputs=[seed, src, tgt])
    seed_text = read_parallel(seed, langs=langs, on_bad_line=on_bad_line)
    src_mono, tgt_mono = read_sentences(src, on_bad_line), read_sentences(tgt, on_bad_line)
    settings = BootstrapSettings(rounds=rounds, precision=precision, neighbours=neighbours, init=init)

    def report(r) -> None:
        note(f"round {r.round}: {r.train_pairs} training pairs ({r.kept} mined pairs kept of {r.mined}), "
             f"dev P@1 {r.dev_p1:.4f}")

    run = Bootstrap(resolved, split_seed(seed_text, resolved), src_mono, tgt_mono, output, settings,
                    train=train_round, load=lambda path: load_round_model(path, resolved.device),
                    resume=resume, report=report)
    finished = run.run()
    if json_out:
        echo_json(json.loads((Path(output) / "wacse.json").read_text(encoding="utf-8")))
        return
    typer.echo(round_table(finished))
    best = max(finished, key=lambda r: r.dev_p1)
    note(f"best: round {best.round} (dev P@1 {best.dev_p1:.4f}), model in {best.model}")
