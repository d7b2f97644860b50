"""`wacse bootstrap` on a comparable corpus made from a clean bitext.

From ``../shared/data/SET/en-XX.tsv`` (duplicates removed, shuffled with ``--seed``): the first
``--seed-size`` pairs are the seed; of the rest, a third stay pairs (their two sides go to the two
monolingual files), a third give only their source and a third only their target, so half of the
sentences on each side have no partner. Each monolingual file is shuffled.

``--mine-only`` runs one mining round with the given model as it is (no training): it reports how
many one-to-one pairs were mined and kept, the share of them that are true pairs, and the two
estimates wacse makes of it (on the hidden dev pairs, and the filter's calibrated one).

Without it, it runs ``wacse bootstrap`` (``--rounds``, ``--recipe``) and, for the comparison, the
seed-only model (round 0) against a model trained on all true pairs (seed + the hidden pairs),
both evaluated on the same dev split and on the test pairs: the pairs of which only one side is in
the monolingual files (never a pair there, so neither mined nor in the oracle's data), a retrieval
among several hundred rather than the dev split's 50, which the seed-only model may saturate.
It also reports the share of each round's kept pairs that are true pairs. This trains ``rounds + 2`` models: with ``cpu-small`` on two
cores that is about 20 minutes each.

    python benchmarks/bootstrap.py --model ../e5-small --mine-only
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

from wacse_cli.bootstrap import (Bootstrap, BootstrapSettings, Round, round_table, split_seed,  # noqa: E402
                                 train_round, write_pairs)
from wacse_cli.io import ParallelText, Sentences  # noqa: E402
from wacse_cli.model import load_encoder  # noqa: E402
from wacse_cli.recipe import load_recipe  # noqa: E402


def comparable(pairs: list[tuple[str, str]], seed_size: int, seed: int):
    """(seed pairs, source sentences, target sentences, the true pairs among them, test pairs): the
    test pairs are those with only one side in the monolingual files, never a pair there."""
    pairs = list(dict.fromkeys(pairs))
    rng = random.Random(seed)
    rng.shuffle(pairs)
    seed_pairs, rest = pairs[:seed_size], pairs[seed_size:]
    third = len(rest) // 3
    hidden, src_only, tgt_only = rest[:third], rest[third:2 * third], rest[2 * third:]
    src = [s for s, _ in hidden + src_only]
    tgt = [t for _, t in hidden + tgt_only]
    rng.shuffle(src)
    rng.shuffle(tgt)
    return seed_pairs, src, tgt, hidden, src_only + tgt_only


def test_p1(models: dict[str, str], test: list[tuple[str, str]], lang: str, recipe) -> dict[str, float]:
    """P@1 (mean of both directions) of each model on the test pairs: a retrieval among all of them,
    harder than the 50-pair dev split, which a seed-only e5-small already gets right."""
    from wacse_cli.train import evaluate_dev
    from wacse_cli.training_data import DevSet

    dev = [DevSet(f"en-{lang}", "en", lang, test)]
    return {name: round(evaluate_dev(load_encoder(path, pooling=recipe.pooling, prefix=recipe.prefix,
                                                  device="cpu"), dev)["mean"], 4)
            for name, path in models.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default="ui/kk", help="SET/LANG: ../shared/data/SET/en-LANG.tsv")
    parser.add_argument("--seed-size", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipe", default="cpu-small")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", type=float, default=0.95)
    parser.add_argument("--mine-only", action="store_true")
    parser.add_argument("--output", help="folder for the run (default: a temporary one)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --output (and its oracle)")
    args = parser.parse_args()
    folder_name, lang = args.data.split("/")
    path = DATA / folder_name / f"en-{lang}.tsv"
    pairs = [tuple(line.split("\t")[:2]) for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line]
    seed_pairs, src, tgt, hidden, test = comparable(pairs, args.seed_size, args.seed)
    recipe = load_recipe(args.recipe, [f'model="{args.model}"', *args.overrides])
    seed = split_seed(ParallelText(f"seed.en-{lang}.tsv", "en", lang, seed_pairs), recipe)
    out = Path(args.output or tempfile.mkdtemp(prefix="wacse-bootstrap-bench-"))
    settings = BootstrapSettings(rounds=args.rounds, precision=args.precision)
    load = lambda p: load_encoder(p, pooling=recipe.pooling, prefix=recipe.prefix, device="cpu")  # noqa: E731
    run = Bootstrap(recipe, seed, Sentences("mono.en", src), Sentences(f"mono.{lang}", tgt), out, settings,
                    train=train_round, load=load, resume=args.resume, report=lambda r: print(round_table([r]).splitlines()[1], flush=True))
    truth = set(hidden)
    info = {"data": args.data, "seed_train": len(seed.train), "dev": len(seed.dev), "source_sentences": len(src),
            "target_sentences": len(tgt), "true_pairs_hidden": len(hidden)}
    if args.mine_only:
        out.mkdir(parents=True, exist_ok=True)
        record = Round(1, len(seed.train))
        kept = run._mine_and_filter(out, args.model, record)
        mined_lines = (out / "mined.tsv").read_text(encoding="utf-8").splitlines()[1:]
        mined = [tuple(line.split("\t")[4:6]) for line in mined_lines]
        info.update({"mined": record.mined, "mined_correct": sum(p in truth for p in mined) / max(len(mined), 1),
                     "kept": record.kept, "kept_correct": sum(p in truth for p in kept) / max(len(kept), 1),
                     "kept_share_of_hidden": sum(p in truth for p in kept) / len(hidden),
                     "heldout_precision_estimate": record.heldout_precision, "heldout_pairs": record.heldout_pairs,
                     "filter_precision_estimate": record.filter_precision, "orphan_negatives": record.negatives})
        print(json.dumps(info, indent=2))
        return
    rounds = run.run()
    oracle_file = out / f"oracle.en-{lang}.tsv"
    write_pairs(oracle_file, list(dict.fromkeys(seed.train + hidden)))
    oracle_recipe = dataclasses.replace(recipe, dev_data=str(run.dev_file))
    if args.resume and (out / "oracle" / "wacse.json").is_file():  # trained by the run being resumed
        oracle = test_p1({"oracle": str(out / "oracle")}, seed.dev, lang, recipe)["oracle"]
    else:
        oracle = train_round(oracle_recipe, out / "oracle", [str(oracle_file)])
    truth = set(hidden)
    for r in rounds[1:]:
        kept = [tuple(line.split("\t")[4:6]) for line in (out / f"round-{r.round}" / "mined.tsv").read_text(
            encoding="utf-8").splitlines()[1:] if line.split("\t")[2] == "keep"]
        info[f"round_{r.round}_kept_correct"] = sum(p in truth for p in kept) / max(len(kept), 1)
    info.update({"rounds": [dataclasses.asdict(r) for r in rounds], "seed_only_dev_p1": rounds[0].dev_p1,
                 "oracle_dev_p1": oracle, "test_pairs": len(test)})
    models = {f"round-{r.round}": r.model for r in rounds} | {"oracle": str(out / "oracle")}
    info["test_p1"] = scores = test_p1(models, test, lang, recipe)
    best = max(scores[f"round-{r.round}"] for r in rounds[1:]) if len(rounds) > 1 else scores["round-0"]
    gap = scores["oracle"] - scores["round-0"]
    info["test_gap_closed"] = round((best - scores["round-0"]) / gap, 3) if gap > 0 else None
    print(round_table(rounds))
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
