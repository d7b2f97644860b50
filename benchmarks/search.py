#!/usr/bin/env python3
"""Search throughput against corpus size: wacse's exact search against FAISS, with recall.

For each corpus size, the same queries go through ``wacse_cli.search.search`` (the code path
behind ``wacse search``, rescoring included) with each index: ``exact`` (wacse's tiled torch
matrix products), ``faiss-flat`` (FAISS brute force, the exact peer), ``faiss-ivf`` and
``faiss-hnsw`` (approximate). Reported: build seconds, queries per second, the ratio to exact
search's queries per second, and recall@k against exact search over all the queries.

The vectors are synthetic but shaped like sentence embeddings: unit vectors scattered around
many centres (uniform noise would be the worst case for approximate indexes, and unlike real
text), and each query is a slightly moved corpus vector, as a translation is to its source.

usage: python benchmarks/search.py [--sizes 1000,10000,100000,1000000] [--queries 1000] [--k 10]
       [--indexes exact,faiss-flat,faiss-ivf,faiss-hnsw] [--hnsw-max 300000] [--dim 384] [--device cpu]
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's wacse_cli, whatever is installed


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int, rng: np.random.Generator, centres: int = 1000, spread: float = 0.6) -> np.ndarray:
    """Unit vectors around ``centres`` random directions, in blocks to keep memory at the output's size."""
    middle = unit(rng.standard_normal((centres, dim), dtype=np.float32))
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        size = min(100_000, n - start)
        noise = rng.standard_normal((size, dim), dtype=np.float32) * (spread / np.sqrt(dim))
        out[start:start + size] = unit(middle[rng.integers(0, centres, size)] + noise)
    return out


def near_copies(corpus: np.ndarray, count: int, rng: np.random.Generator, shift: float = 0.3) -> np.ndarray:
    rows = rng.choice(len(corpus), count, replace=False)
    noise = rng.standard_normal((count, corpus.shape[1]), dtype=np.float32) * (shift / np.sqrt(corpus.shape[1]))
    return unit(corpus[rows] + noise)


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return sum(len(set(a.tolist()) & set(e.tolist())) for a, e in zip(found, exact)) / exact.size


def run_size(n: int, args, rng: np.random.Generator) -> list[tuple]:
    from wacse_cli.index import build_index
    from wacse_cli.search import search

    corpus = clustered(n, args.dim, rng)
    queries = near_copies(corpus, min(args.queries, n), rng)
    rows, exact_ids, exact_qps = [], None, None
    for kind in args.indexes:
        if kind == "faiss-hnsw" and n > args.hnsw_max:
            continue
        started = time.perf_counter()
        index, report = build_index(corpus, kind, device=args.device, progress=False)
        built = time.perf_counter() - started
        started = time.perf_counter()
        _, ids = search(queries, corpus, args.k, corpus_index=index, device=args.device)
        qps = len(queries) / (time.perf_counter() - started)
        if kind == "exact":
            exact_ids, exact_qps = ids, qps
        params = ", ".join(f"{key} {value}" for key, value in report.params.items()) or "-"
        hit = recall(ids, exact_ids) if exact_ids is not None else float("nan")
        ratio = qps / exact_qps if exact_qps else float("nan")
        rows.append((n, kind, params, built, qps, ratio, hit))
        print(f"{n}\t{kind}\t{params}\t{built:.2f}\t{qps:.0f}\t{ratio:.2f}\t{hit:.4f}", flush=True)
        del index
        gc.collect()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--indexes", default="exact,faiss-flat,faiss-ivf,faiss-hnsw")
    ap.add_argument("--hnsw-max", type=int, default=300_000,
                    help="skip faiss-hnsw above this corpus size (its build dominates the run on a small CPU)")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    args.indexes = args.indexes.split(",")
    if args.indexes[0] != "exact":
        ap.error("--indexes must start with exact: recall and ratios are measured against it")
    if any(kind.startswith("faiss") for kind in args.indexes):
        import faiss  # noqa: F401  (imported here so that its load time is not counted as a build)
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}, device {args.device}; {args.queries} queries, k={args.k}, dim {args.dim}")
    print("corpus\tindex\tparams\tbuild_s\tqueries_per_s\tvs_exact\trecall@k")
    rng = np.random.default_rng(0)
    for n in (int(size) for size in args.sizes.split(",")):
        run_size(n, args, rng)
        gc.collect()


if __name__ == "__main__":
    main()
