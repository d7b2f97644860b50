"""`wacse filter` against known noise: precision, recall and F1 of the kept pairs.

For each language pair, the clean bitext (``../shared/data/SET/en-XX.tsv``, duplicates removed)
gets ``--noise`` of its lines (30% by default) replaced by noise of five kinds in equal shares:

- random: the target of another line,
- shift: a run of 2-5 consecutive lines whose targets are moved one line up (a misaligned block),
- copy: the target is the source again (an untranslated string),
- wrong-language: the target is a sentence of another language's file (``--other``),
- truncation: the target cut at a word boundary to 30-60% of its words.

``wacse filter`` then runs on the noisy file with its automatic threshold (``--precision``), and
the kept lines are compared with the clean ones: precision = clean kept / kept, recall = clean
kept / clean, and per kind of noise the share dropped.

    python benchmarks/filter.py --model ../e5-small --pairs ui/kk:ml ui/ka:kk cldr/kk:ka -- --pooling mean --prefix "query: "
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
KINDS = ("random", "shift", "copy", "wrong-language", "truncation")


def read_pairs(path: Path) -> list[tuple[str, str]]:
    rows = [tuple(line.split("\t")[:2]) for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line]
    return list(dict.fromkeys(rows))  # clean reference: each pair once


def truncate(text: str, rng: random.Random) -> str:
    words = text.split()
    if len(words) < 2:
        return text[: max(1, len(text) // 2)]
    keep = max(1, round(len(words) * rng.uniform(0.3, 0.6)))
    return " ".join(words[:keep])


def make_noisy(clean: list[tuple[str, str]], others: list[str], rate: float, seed: int):
    """(pairs, labels): ``rate`` of the lines replaced by noise, labels 'clean' or the kind."""
    rng = random.Random(seed)
    n = len(clean)
    pairs, labels = list(clean), ["clean"] * n
    per_kind = round(n * rate / len(KINDS))
    free = set(range(n - 1))
    # shifted blocks first: they need runs of consecutive free lines
    shifted = 0
    while shifted < per_kind:
        length = min(rng.randint(2, 5), per_kind - shifted)
        start = rng.randrange(n - length - 1)
        block = range(start, start + length)
        if not all(i in free for i in block):
            continue
        for i in block:
            pairs[i] = (clean[i][0], clean[i + 1][1])
            labels[i] = "shift"
            free.discard(i)
        shifted += length
    chosen = rng.sample(sorted(free), per_kind * (len(KINDS) - 1))
    for k, kind in enumerate(KINDS[:1] + KINDS[2:]):
        for i in chosen[k * per_kind:(k + 1) * per_kind]:
            src, tgt = clean[i]
            if kind == "random":
                j = rng.choice([j for j in range(n) if j != i])
                tgt = clean[j][1]
            elif kind == "copy":
                tgt = src
            elif kind == "wrong-language":
                tgt = rng.choice(others)
            else:
                tgt = truncate(tgt, rng)
            pairs[i], labels[i] = (src, tgt), kind
    return pairs, labels


def score(labels: list[str], kept: list[bool]) -> dict:
    clean = sum(label == "clean" for label in labels)
    kept_n = sum(kept)
    good = sum(k and label == "clean" for k, label in zip(kept, labels))
    p, r = good / max(kept_n, 1), good / max(clean, 1)
    out = {"pairs": len(labels), "clean": clean, "kept": kept_n, "precision": p, "recall": r,
           "f1": 2 * p * r / (p + r) if p + r else 0.0}
    for kind in KINDS:
        total = sum(label == kind for label in labels)
        dropped = sum(not k and label == kind for k, label in zip(kept, labels))
        out[f"dropped {kind}"] = f"{dropped}/{total}"
    return out


def run_filter(path: Path, model: str, extra: list[str]) -> tuple[list[bool], dict, float]:
    scores = path.with_suffix(".scores")
    cmd = [sys.executable, "-m", "wacse_cli", "filter", str(path), "-m", model, "-o", str(path.with_suffix(".kept")),
           "--scores", str(scores), "--json", *extra]
    started = time.time()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode:
        sys.exit(f"wacse filter failed: {done.stderr.strip()}")
    kept = [line.split("\t")[2] == "keep" for line in scores.read_text(encoding="utf-8").splitlines()]
    return kept, json.loads(done.stdout), time.time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--pairs", nargs="+", default=["ui/kk:ml", "ui/ka:kk", "cldr/kk:ka"],
                        help="SET/LANG:OTHER: ../shared/data/SET/en-LANG.tsv, with OTHER's targets as wrong-language noise")
    parser.add_argument("--noise", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="folder to keep the noisy files and scores in")
    parser.add_argument("filter_args", nargs="*", help="more options for wacse filter (after --)")
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="wacse-filter-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    for spec in args.pairs:
        folder_name, _, langs = spec.rpartition("/")
        lang, other = langs.split(":")
        clean = read_pairs(DATA / folder_name / f"en-{lang}.tsv")
        others = [t for _, t in read_pairs(DATA / folder_name / f"en-{other}.tsv")]
        pairs, labels = make_noisy(clean, others, args.noise, args.seed)
        path = folder / f"noisy-{folder_name}.en-{lang}.tsv"
        path.write_text("".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")
        path.with_suffix(".labels").write_text("\n".join(labels) + "\n", encoding="utf-8")
        kept, summary, wall = run_filter(path, args.model, args.filter_args)
        result = score(labels, kept)
        result.update({"data": spec, "wall_s": round(wall, 1), "threshold": summary.get("threshold"),
                       "estimated_precision": summary.get("estimated_precision"),
                       "estimated_recall": summary.get("estimated_recall"), "reasons": summary.get("reasons")})
        print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
