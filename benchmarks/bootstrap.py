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
both evaluated on the same dev split. This trains ``rounds + 2`` models: with ``cpu-small`` on two
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
    """(seed pairs, source sentences, target sentences, the true pairs among them)."""
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
    return seed_pairs, src, tgt, hidden


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
    args = parser.parse_args()
    folder_name, lang = args.data.split("/")
    path = DATA / folder_name / f"en-{lang}.tsv"
    pairs = [tuple(line.split("\t")[:2]) for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line]
    seed_pairs, src, tgt, hidden = comparable(pairs, args.seed_size, args.seed)
    recipe = load_recipe(args.recipe, [f'model="{args.model}"', *args.overrides])
    seed = split_seed(ParallelText(f"seed.en-{lang}.tsv", "en", lang, seed_pairs), recipe)
    out = Path(args.output or tempfile.mkdtemp(prefix="wacse-bootstrap-bench-"))
    settings = BootstrapSettings(rounds=args.rounds, precision=args.precision)
    load = lambda p: load_encoder(p, pooling=recipe.pooling, prefix=recipe.prefix, device="cpu")  # noqa: E731
    run = Bootstrap(recipe, seed, Sentences("mono.en", src), Sentences(f"mono.{lang}", tgt), out, settings,
                    train=train_round, load=load, report=lambda r: print(round_table([r]).splitlines()[1], flush=True))
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
    oracle = train_round(oracle_recipe, out / "oracle", [str(oracle_file)])
    info.update({"rounds": [dataclasses.asdict(r) for r in rounds], "seed_only_dev_p1": rounds[0].dev_p1,
                 "oracle_dev_p1": oracle})
    best = max(r.dev_p1 for r in rounds)
    gap = oracle - rounds[0].dev_p1
    info["gap_closed"] = (best - rounds[0].dev_p1) / gap if gap > 0 else None
    print(round_table(rounds))
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
