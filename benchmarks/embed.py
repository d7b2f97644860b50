#!/usr/bin/env python3
"""Embedding throughput: ``wacse embed`` against sentence-transformers' ``encode``, in one run.

Both embed the same real sentences (a seeded mix of every language in ../shared/data, both sides
of each pair) with the same model folder, mean pooling and "query: " prompt, batch size, max
length, device and torch threads. wacse runs the code path behind ``wacse embed`` (check the
file, stream it in chunks, sort by token count, write the .npy); sentence-transformers encodes a
list in memory. Model loading and one warm-up batch each are excluded. Before any timing the two
outputs must agree (cosine > 0.999 for every sentence). Runs alternate and the best of
``--repeats`` counts, so that noise from other work on the machine hits both alike.

usage: python benchmarks/embed.py [--model ../e5-small] [--sentences 2000] [--batch-size 64]
       (build the model with: python ../shared/tools/make_e5_small.py ../e5-small)
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))  # this checkout's wacse_cli, whatever is installed


def real_sentences(count: int, seed: int = 0) -> list[str]:
    sentences = []
    for path in sorted(SHARED.glob("data/*/en-*.tsv")):
        for row in path.read_text(encoding="utf-8").splitlines():
            sentences.extend(s for s in row.split("\t")[:2] if s.strip())
    random.Random(seed).shuffle(sentences)
    if len(sentences) < count:
        sys.exit(f"only {len(sentences)} sentences under {SHARED / 'data'}; ask for fewer with --sentences")
    return sentences[:count]


def wacse_runner(args, path: Path):
    import numpy as np

    from wacse_cli.embed import embed_file, open_sentences
    from wacse_cli.model import load_encoder

    encoder = load_encoder(args.model, pooling="mean", prefix="query: ", max_length=args.max_length, device=args.device)
    out = str(path.with_suffix(".npy"))

    def run(file: Path):
        with open_sentences(str(file)) as text:
            embed_file(encoder, text, out, batch_size=args.batch_size, max_length=args.max_length, progress=False)
        return np.load(out)

    return run


def st_runner(args):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    from wacse_cli.model import quiet_transformers

    quiet_transformers()
    transformer = Transformer(args.model, max_seq_length=args.max_length)
    model = SentenceTransformer(
        modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean"), Normalize()], device=args.device
    )

    def run(sentences: list[str]):
        return model.encode(sentences, prompt="query: ", batch_size=args.batch_size, convert_to_numpy=True)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=os.environ.get("WACSE_E5_SMALL", str(ROOT.parent / "e5-small")))
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--min-agreement", type=float, default=0.999,
                    help="lowest cosine allowed between the two runners' vectors (bf16 autocast on a GPU: 0.99)")
    args = ap.parse_args()
    if not Path(args.model, "config.json").exists():
        sys.exit(f"no model at {args.model}; build it with: python ../shared/tools/make_e5_small.py {args.model}")
    import torch

    sentences = real_sentences(args.sentences)
    with tempfile.TemporaryDirectory() as tmp:
        text, warm = Path(tmp, "sentences.txt"), Path(tmp, "warm.txt")
        text.write_text("\n".join(sentences) + "\n", encoding="utf-8")
        warm.write_text("\n".join(sentences[:args.batch_size]) + "\n", encoding="utf-8")
        wacse, st = wacse_runner(args, text), st_runner(args)
        wacse(warm), st(sentences[:args.batch_size])
        times, outputs = {"wacse": [], "st": []}, {}
        for repeat in range(args.repeats):
            for name, run, data in (("wacse", wacse, text), ("st", st, sentences)):
                started = time.perf_counter()
                outputs[name] = run(data)
                times[name].append(time.perf_counter() - started)
            if repeat == 0:  # the two must agree before their times mean anything
                agreement = float((outputs["wacse"] * outputs["st"]).sum(axis=1).min())
                if agreement <= args.min_agreement:
                    sys.exit(f"the two disagree: lowest cosine between their vectors {agreement:.6f}")
    best = {name: min(values) for name, values in times.items()}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}, device {args.device}, torch {torch.__version__}")
    print(f"model {args.model}: mean pooling, prompt 'query: ', batch size {args.batch_size}, "
          f"max length {args.max_length}")
    print(f"{len(sentences)} sentences; lowest cosine between the two outputs {agreement:.6f}")
    print("runner\tbest_s\tsentences_per_s\tall_runs_s")
    for name, label in (("wacse", "wacse embed"), ("st", "sentence-transformers encode")):
        runs = " ".join(f"{t:.2f}" for t in times[name])
        print(f"{label}\t{best[name]:.2f}\t{len(sentences) / best[name]:.1f}\t{runs}")
    print(f"throughput ratio wacse / sentence-transformers: {best['st'] / best['wacse']:.2f}")


if __name__ == "__main__":
    main()
