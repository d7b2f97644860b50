#!/usr/bin/env python3
"""The paper's ablation on your own data: TR, TR+AWP, TR+WTR and WACSE (TR+AWP+WTR).

Four short trainings from one recipe, each the recipe with the missing word-level weights set to
0 (exactly what ``wacse train --recipe R --set losses.awp=0 --set losses.wtr=0`` does for "TR
only"); data, dev split, seed, steps and batch are shared, so the rows differ only in the
objective. Prints one row per variant: the losses used, dev P@1 (mean of both directions, over
the language pairs) before and after training, test P@1 on the ``--test`` files (scored as
``wacse eval retrieval`` scores them) and the wall time of the run.

usage: python benchmarks/ablation.py ../shared/data/cldr/en-kk.tsv ../shared/data/cldr/en-ka.tsv \\
           --model ../e5-small [--recipe cpu-small] [--steps 150] [--batch-size 64] \\
           [--set key=value ...] [--test held-out/en-kk.tsv ...] [--output runs/ablation] [--json]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wacse_cli.errors import WacseError  # noqa: E402

VARIANTS = {
    "TR": ["losses.awp=0", "losses.wtr=0"],
    "TR+AWP": ["losses.wtr=0"],
    "TR+WTR": ["losses.awp=0"],
    "WACSE": [],
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="training files (en-kk.tsv ...), as for wacse train")
    parser.add_argument("--model", required=True, help="Hugging Face id or local folder")
    parser.add_argument("--recipe", default="cpu-small", help="base recipe (default: cpu-small)")
    parser.add_argument("--steps", type=int, help="training steps per variant (default: the recipe's)")
    parser.add_argument("--batch-size", type=int, help="pairs per step (default: the recipe's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe field for every variant (repeatable)")
    parser.add_argument("--test", nargs="+", default=[], metavar="FILE",
                        help="held-out parallel or multi-way files scored after each run")
    parser.add_argument("--device", help="auto, cpu or cuda (default: the recipe's)")
    parser.add_argument("--output", help="keep the four runs here (default: a temporary folder, removed)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    return parser.parse_args(argv)


def shared_overrides(args: argparse.Namespace) -> list[str]:
    model = args.model.replace("\\", "\\\\").replace('"', '\\"')
    out = [f'model="{model}"']
    out += [f"steps={args.steps}"] if args.steps else []
    out += [f"batch_size={args.batch_size}"] if args.batch_size else []
    out += [f'device="{args.device}"'] if args.device else []
    return out + args.overrides


def held_out_score(folder: Path, tests: list) -> float | None:
    """Mean P@1 over the test pairs, with ``wacse eval retrieval``'s computation."""
    if not tests:
        return None
    from wacse_cli.evaluate import bitext_retrieval
    from wacse_cli.model import load_encoder

    subsets = bitext_retrieval(load_encoder(str(folder), device="auto"), tests, progress=False)
    return sum(s["main_score"] for s in subsets) / len(subsets)


def run_variant(name: str, extra: list[str], args, out: Path, tests: list) -> dict:
    from wacse_cli.recipe import load_recipe
    from wacse_cli.train import Trainer

    recipe = load_recipe(args.recipe, shared_overrides(args) + extra)
    started = time.time()
    result = Trainer(recipe, out / name, files=args.files).run()
    wall = time.time() - started
    weights = {k: v for k, v in recipe.to_dict()["losses"].items() if v}
    return {"variant": name, "losses": " ".join(f"{k}={v:g}" for k, v in weights.items()),
            "dev_before": result.dev_before.get("mean"), "dev_after": result.dev_after.get("mean"),
            "test": held_out_score(result.output, tests), "best_step": result.best_step, "wall_s": round(wall, 1)}


def format_table(rows: list[dict]) -> str:
    def cell(value) -> str:
        return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

    keys = ["variant", "losses", "dev_before", "dev_after", "test", "best_step", "wall_s"]
    lines = ["\t".join(keys)]
    lines += ["\t".join(cell(row[k]) if k != "wall_s" else f"{row[k]:.1f}" for k in keys) for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from wacse_cli.io import read_bitexts

    started = time.time()
    keep = args.output is not None
    out = Path(args.output) if keep else Path(tempfile.mkdtemp(prefix="wacse-ablation-"))
    try:
        tests = read_bitexts(args.test) if args.test else []  # a bad test file fails before any training
        rows = []
        for name, extra in VARIANTS.items():
            print(f"ablation: {name} ({len(rows) + 1}/{len(VARIANTS)})", file=sys.stderr, flush=True)
            rows.append(run_variant(name, extra, args, out, tests))
            if not keep:
                shutil.rmtree(out / name, ignore_errors=True)
    except WacseError as exc:
        print(f"ablation: error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        if not keep:
            shutil.rmtree(out, ignore_errors=True)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    print(f"ablation: 4 runs in {time.time() - started:.1f} s" + (f", kept in {out}" if keep else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
