#!/usr/bin/env python3
"""Exact margin mining time: ``wacse_cli.search.mine`` (the code behind ``wacse mine``) on N x N vectors.

Both directions of exact k-nearest-neighbour search (tiled matrix products with a running top-k),
float64 rescoring of every candidate, the ratio margin and the greedy one-to-one selection, timed
as one call. The vectors are synthetic unit vectors shaped like sentence embeddings (scattered
around many centres); the targets are the sources moved slightly and shuffled, so every source has
a true partner, and the script reports how many mined pairs are those partners. Target on a GPU:
1M x 1M in under a minute.

usage: python benchmarks/mine.py [--n 1000000] [--dim 384] [--k 4] [--device cuda]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wacse_cli.search import mine  # noqa: E402


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic_bitext(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sources, targets, partner of each target) with targets = moved, shuffled sources."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((max(n // 1000, 1), dim), dtype=np.float32))
    src = unit(centres[rng.integers(0, len(centres), n)] + 0.5 * rng.standard_normal((n, dim), dtype=np.float32) / np.sqrt(dim) * 4)
    order = rng.permutation(n)
    tgt = unit(src[order] + 0.15 * rng.standard_normal((n, dim), dtype=np.float32) / np.sqrt(dim) * 4)
    return src, tgt, order


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    import torch

    src, tgt, partner = synthetic_bitext(args.n, args.dim)
    mine(src[:2048], tgt[:2048], k=args.k, device=args.device)  # warm-up: CUDA context and kernels
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    pairs = mine(src, tgt, k=args.k, device=args.device)
    seconds = time.perf_counter() - started
    correct = sum(partner[p.tgt] == p.src for p in pairs)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"device {name}, torch {torch.__version__}")
    print(f"exact mining {args.n:,} x {args.n:,} (dim {args.dim}, k {args.k}): {seconds:.1f} s, "
          f"{len(pairs):,} pairs, {correct / max(len(pairs), 1):.4f} of them the true partners")


if __name__ == "__main__":
    main()
