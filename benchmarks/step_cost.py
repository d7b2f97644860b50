#!/usr/bin/env python3
"""Seconds per training step: TR alone against TR + WTR and TR + AWP + WTR, at a recipe's settings.

The step is what ``wacse train`` runs (``wacse_cli.gradcache.train_step``, then clipping and
AdamW) on real batches: ``--pairs`` lines of each ``../shared/data/ui`` file, their word pairs
aligned as the recipe aligns them (cpu-small: the embed aligner with the IBM Model 1 prior), less
the recipe's dev split. The variants take turns on each of ``--steps`` batches, so that the
machine's load weighs on all of them alike; each variant's figure is its median step, and its
cost against the first variant the median of the two steps' ratio on the same batch. A model
without an MLM head (multilingual-e5) gets a fresh one, not warmed up: the time of a step does not
depend on the head's weights.

usage: python benchmarks/step_cost.py --model ../e5-small [--recipe cpu-small] [--pairs 130]
           [--steps 9] [--variant NAME=KEY=VALUE,KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {
    "TR": "losses.awp=0,losses.wtr=0",
    "TR+WTR": "losses.awp=0",
    "TR+AWP+WTR (cpu-small AWP)": "losses.awp=0.1",
    "TR+AWP+WTR (paper AWP)": "losses.awp=0.1,awp_rows=1.0,awp_candidates=0,awp_mask_groups=2",
}


def sample_files(folder: Path, pairs: int) -> list[str]:
    """The first ``pairs`` lines of each ui file, in files named as the recipe's data."""
    out = []
    for path in sorted((ROOT.parent / "shared" / "data" / "ui").glob("en-*.tsv")):
        if path.stem == "en-sw":
            continue
        target = folder / path.name
        target.write_text("\n".join(path.read_text(encoding="utf-8").splitlines()[:pairs]) + "\n", encoding="utf-8")
        out.append(str(target))
    return out


def base_overrides(model: str, extra: list[str]) -> list[str]:
    """The model, a (fresh) MLM head for AWP, and the user's overrides."""
    return [f'model="{model}"', "losses.awp=0.1", "mlm_warmup_steps=1", *extra]


def prepared(recipe_name: str, files: list[str], overrides: list[str]):
    """(recipe, encoder, encoded pairs) with an MLM head on the encoder."""
    from wacse_cli.recipe import load_recipe
    from wacse_cli.train import build_encoder
    from wacse_cli.training_data import encode_training_data, load_training_data

    recipe = load_recipe(recipe_name, overrides)
    data = load_training_data(recipe, files)
    encoder = build_encoder(recipe, data.languages, "cpu")
    return recipe, encoder, encode_training_data(data, recipe, encoder, progress=False)


class Stepper:
    """One variant's objective and optimizer on the shared encoder."""

    def __init__(self, recipe, encoder, seed: int):
        import numpy as np
        import torch

        from wacse_cli.train import build_objective

        self.recipe, self.encoder = recipe, encoder
        self.objective = build_objective(encoder, recipe)
        self.optimizer = torch.optim.AdamW([p for p in encoder.parameters() if p.requires_grad], lr=recipe.lr)
        self.rng = np.random.default_rng(seed)

    def step(self, chosen) -> float:
        import torch

        from wacse_cli.data import make_batch
        from wacse_cli.gradcache import train_step

        recipe = self.recipe
        started = time.perf_counter()
        batch = make_batch(chosen, self.encoder.tokenizer.pad_token_id, self.rng, recipe.awp_mask_groups,
                           recipe.awp_rows)
        self.optimizer.zero_grad(set_to_none=True)
        train_step(self.objective, batch, recipe.chunk_size)
        torch.nn.utils.clip_grad_norm_([p for p in self.encoder.parameters() if p.grad is not None], recipe.grad_clip)
        self.optimizer.step()
        return time.perf_counter() - started


def time_steps(steppers: dict, encoded, steps: int, batch_size: int) -> dict[str, list[float]]:
    """Seconds per step of each variant, the variants taking turns on each batch (the machine's
    load then weighs on all of them alike); one untimed warm-up turn first."""
    import numpy as np

    order = np.random.default_rng(0).permutation(len(encoded))
    times = {name: [] for name in steppers}
    for step in range(steps + 1):
        chosen = [encoded[i] for i in np.roll(order, -step * batch_size)[:batch_size]]
        for name, stepper in steppers.items():
            seconds = stepper.step(chosen)
            if step:
                times[name].append(seconds)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.environ.get("WACSE_E5_SMALL", str(ROOT.parent / "e5-small")))
    ap.add_argument("--recipe", default="cpu-small")
    ap.add_argument("--pairs", type=int, default=130, help="lines read from each ui file (the dev split comes out)")
    ap.add_argument("--steps", type=int, default=9, help="timed batches, each variant one step on each")
    ap.add_argument("--set", action="append", default=[], help="recipe override for every variant")
    ap.add_argument("--variant", action="append", default=[], help="NAME=KEY=VALUE,KEY=VALUE (default: the four)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    variants = dict(v.split("=", 1) for v in args.variant) if args.variant else VARIANTS
    from wacse_cli.recipe import load_recipe

    overrides = base_overrides(args.model, args.set)
    with tempfile.TemporaryDirectory() as folder:
        base, encoder, encoded = prepared(args.recipe, sample_files(Path(folder), args.pairs), overrides)
    encoder.train()
    links = sum(len(p.links) for p in encoded) / len(encoded)
    steppers = {name: Stepper(load_recipe(args.recipe, overrides + [v for v in values.split(",") if v]), encoder, 0)
                for name, values in variants.items()}
    times = time_steps(steppers, encoded, args.steps, base.batch_size)
    first = next(iter(variants))
    tr = statistics.median(times[first])
    rows = [{"variant": name, "overrides": variants[name], "median_s": round(statistics.median(t), 3),
             "min_s": round(min(t), 3), "max_s": round(max(t), 3), "vs_first": round(statistics.median(t) / tr, 3),
             "vs_first_per_batch": round(statistics.median(a / b for a, b in zip(t, times[first])), 3)}
            for name, t in times.items()]
    summary = {"recipe": args.recipe, "model": args.model, "train_pairs": len(encoded),
               "word_pairs_per_sentence": round(links, 2), "batch_size": base.batch_size, "rows": rows}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{len(encoded)} training pairs, {links:.2f} word pairs a sentence, batch {base.batch_size}, "
          f"{args.steps} batches, the variants taking turns on each")
    print("| variant | overrides | median s/step | range | vs first | same batch vs first (median) |\n"
          "|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | `{r['overrides']}` | {r['median_s']:.3f} | {r['min_s']:.3f}-{r['max_s']:.3f} | "
              f"{r['vs_first']:.2f} | {r['vs_first_per_batch']:.2f} |")


if __name__ == "__main__":
    main()
