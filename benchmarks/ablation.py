#!/usr/bin/env python3
"""The paper's ablation on your own data: TR, TR+AWP, TR+WTR, WACSE (TR+AWP+WTR) and TR+RTL, over seeds.

Short trainings from one recipe, each the recipe with the other objectives' weights set to 0
(exactly what ``wacse train --recipe R --set losses.awp=0 --set losses.wtr=0`` does for "TR only");
an objective a variant turns on keeps the recipe's weight, or 0.1 where the recipe has it off.
Data, dev split, steps and batch are shared, so within a seed the rows differ only in the
objective. A variant the model cannot train (AWP on a model without an MLM head, unless the recipe
warms one up with ``mlm_warmup_steps``) is reported as refused. Prints one row per variant and seed, then per variant the mean, the sample standard
deviation and the range over seeds of dev P@1 (mean of both directions, over the language pairs)
and of test P@1 on the ``--test`` files (scored as ``wacse eval retrieval`` scores them).

usage: python benchmarks/ablation.py ../shared/data/ui/en-kk.tsv ../shared/data/ui/en-ka.tsv \
           --model ../e5-small [--recipe cpu-small] [--seeds 42,43,44] [--variants TR,TR+WTR] \
           [--steps 150] [--batch-size 64] [--set key=value ...] [--test held-out/en-kk.tsv ...] \
           [--output runs/ablation] [--json]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wacse_cli.errors import WacseError  # noqa: E402

VARIANTS = {  # the objectives each variant turns on besides TR
    "TR": [],
    "TR+AWP": ["awp"],
    "TR+WTR": ["wtr"],
    "WACSE": ["awp", "wtr"],
    "TR+RTL": ["rtl"],
}
DEFAULT_WEIGHT = 0.1


def variant_overrides(on: list[str], recipe_weights: dict) -> list[str]:
    """--set values for a variant: its objectives at the recipe's weight (0.1 where that is 0)."""
    return [f"losses.{name}={(recipe_weights[name] or DEFAULT_WEIGHT) if name in on else 0}"
            for name in ("awp", "wtr", "rtl")]


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
    parser.add_argument("--output", help="keep the runs here (default: a temporary folder, removed)")
    parser.add_argument("--seeds", default="42", help="comma-separated seeds, one run per variant each (default: 42)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
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


def run_variant(name: str, seed: int, args, out: Path, tests: list) -> dict:
    from wacse_cli.recipe import load_recipe
    from wacse_cli.train import Trainer

    base = load_recipe(args.recipe, shared_overrides(args)).to_dict()["losses"]
    recipe = load_recipe(args.recipe, shared_overrides(args) + variant_overrides(VARIANTS[name], base) + [f"seed={seed}"])
    weights = {k: v for k, v in recipe.to_dict()["losses"].items() if v}
    row = {"variant": name, "seed": seed, "losses": " ".join(f"{k}={v:g}" for k, v in weights.items())}
    started = time.time()
    try:
        result = Trainer(recipe, out / f"{name}-{seed}", files=args.files).run()
    except WacseError as exc:
        return {**row, "refused": str(exc).split(";")[0]}
    return {**row, "dev_before": result.dev_before.get("mean"), "dev_after": result.dev_after.get("mean"),
            "test": held_out_score(result.output, tests), "best_step": result.best_step,
            "wall_s": round(time.time() - started, 1)}


def summarise(rows: list[dict]) -> list[dict]:
    """Per variant: mean, sample standard deviation and range over the seeds that ran."""
    out = []
    for name in dict.fromkeys(r["variant"] for r in rows):
        ran = [r for r in rows if r["variant"] == name and "refused" not in r]
        summary: dict = {"variant": name, "seeds": len(ran)}
        for key in ("dev_after", "test"):
            values = [r[key] for r in ran if r.get(key) is not None]
            if values:
                summary[key] = {"mean": statistics.fmean(values), "min": min(values), "max": max(values),
                                "sd": statistics.stdev(values) if len(values) > 1 else 0.0}
        out.append(summary)
    return out


def format_table(rows: list[dict], summary: list[dict]) -> str:
    def cell(value) -> str:
        return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

    keys = ["variant", "seed", "losses", "dev_before", "dev_after", "test", "best_step", "wall_s"]
    lines = ["\t".join(keys)]
    for row in rows:
        refused = f"\trefused: {row['refused']}" if "refused" in row else ""
        lines.append("\t".join(cell(row.get(k)) for k in keys[:3]) + refused if refused
                     else "\t".join(cell(row.get(k)) for k in keys))
    lines += ["", "variant\tseeds\tdev_after mean ± sd (min-max)\ttest mean ± sd (min-max)"]
    for s in summary:
        stats = [f"{s[k]['mean']:.4f} ± {s[k]['sd']:.4f} ({s[k]['min']:.4f}-{s[k]['max']:.4f})" if k in s else "-"
                 for k in ("dev_after", "test")]
        lines.append("\t".join([s["variant"], str(s["seeds"]), *stats]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from wacse_cli.io import read_bitexts

    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    names = [x.strip() for x in args.variants.split(",") if x.strip()]
    unknown = [x for x in names if x not in VARIANTS]
    if unknown or not seeds:
        print(f"ablation: error: unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}"
              if unknown else "ablation: error: --seeds names no seed", file=sys.stderr)
        return 2
    started = time.time()
    keep = args.output is not None
    out = Path(args.output) if keep else Path(tempfile.mkdtemp(prefix="wacse-ablation-"))
    try:
        tests = read_bitexts(args.test) if args.test else []  # a bad test file fails before any training
        rows = []
        for seed in seeds:
            for name in names:
                print(f"ablation: {name}, seed {seed} ({len(rows) + 1}/{len(seeds) * len(names)})", file=sys.stderr,
                      flush=True)
                rows.append(run_variant(name, seed, args, out, tests))
                if not keep:
                    shutil.rmtree(out / f"{name}-{seed}", ignore_errors=True)
    except WacseError as exc:
        print(f"ablation: error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        if not keep:
            shutil.rmtree(out, ignore_errors=True)
    summary = summarise(rows)
    print(json.dumps({"runs": rows, "summary": summary}, indent=2) if args.json else format_table(rows, summary))
    print(f"ablation: {len(rows)} runs in {time.time() - started:.1f} s" + (f", kept in {out}" if keep else ""),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
