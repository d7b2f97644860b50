"""Exact nearest neighbours, LASER's ratio margin, and bitext mining.

All scores are cosines of unit vectors, computed tile by tile in float32 so memory stays bounded
by the tile size rather than by ``queries x corpus``.

Ratio margin (Artetxe & Schwenk 2019), with k neighbours in both directions::

    margin(x, y) = cos(x, y) / ( sum_{z in NN_k(x)} cos(x, z) / 2k  +  sum_{z in NN_k(y)} cos(y, z) / 2k )
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

TILE = 4096


def _tensor(x: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)


def topk_cosine(queries: np.ndarray, corpus: np.ndarray, k: int, *, device="cpu", tile: int = TILE):
    """(scores, indices), each (n_queries, min(k, n_corpus)), best first."""
    k = min(k, len(corpus))
    scores = np.zeros((len(queries), k), dtype=np.float32)
    indices = np.zeros((len(queries), k), dtype=np.int64)
    if k == 0 or len(queries) == 0:
        return scores, indices
    c = _tensor(corpus, device)
    for start in range(0, len(queries), tile):
        q = _tensor(queries[start:start + tile], device)
        best_s, best_i = None, None
        for c_start in range(0, len(c), tile):
            sims = q @ c[c_start:c_start + tile].T
            s, i = sims.topk(min(k, sims.shape[1]), dim=1)
            i = i + c_start
            if best_s is not None:
                s, order = torch.cat([best_s, s], 1).topk(k, dim=1)
                i = torch.cat([best_i, i], 1).gather(1, order)
            best_s, best_i = s, i
        scores[start:start + len(q)] = best_s.cpu().numpy()
        indices[start:start + len(q)] = best_i.cpu().numpy()
    return scores, indices


def knn_mean(x: np.ndarray, y: np.ndarray, k: int, **kwargs) -> np.ndarray:
    """Mean cosine of each row of x to its k nearest rows of y."""
    scores, _ = topk_cosine(x, y, k, **kwargs)
    return scores.mean(axis=1) if scores.shape[1] else np.zeros(len(x), dtype=np.float32)


def margin(cos: np.ndarray, x_mean: np.ndarray, y_mean: np.ndarray) -> np.ndarray:
    """Ratio margin from cosines and the two neighbourhood means (broadcasting)."""
    return cos / ((x_mean + y_mean) / 2)


def pair_cosines(x: np.ndarray, y: np.ndarray, x_idx: np.ndarray, y_idx: np.ndarray) -> np.ndarray:
    """cos(x[x_idx[i]], y[y_idx[i]]) in float64, for exact rescoring of candidates."""
    a, b = x[x_idx].astype(np.float64), y[y_idx].astype(np.float64)
    return (a * b).sum(-1)


def search(queries: np.ndarray, corpus: np.ndarray, k: int, *, score: str = "cosine", neighbours: int = 4, device="cpu"):
    """Top-k corpus rows per query by cosine or by ratio margin; returns (scores, indices)."""
    if score == "cosine":
        return topk_cosine(queries, corpus, k, device=device)
    candidates = max(k, neighbours)
    _, cand = topk_cosine(queries, corpus, candidates, device=device)
    q_mean = knn_mean(queries, corpus, neighbours, device=device)
    c_mean = knn_mean(corpus, queries, neighbours, device=device)
    rows = np.repeat(np.arange(len(queries)), cand.shape[1])
    cos = pair_cosines(queries, corpus, rows, cand.ravel()).reshape(cand.shape)
    scores = margin(cos, q_mean[:, None], c_mean[cand])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(cand, order, 1)


@dataclass
class MinedPair:
    score: float
    src: int
    tgt: int


def mine(src: np.ndarray, tgt: np.ndarray, *, k: int = 4, threshold: float | None = None, device="cpu") -> list[MinedPair]:
    """LASER mining: the best margin candidate of every source and of every target sentence, merged,
    sorted by score and accepted greedily so that each sentence is used at most once."""
    if len(src) == 0 or len(tgt) == 0:
        return []
    fwd_cos, fwd_idx = topk_cosine(src, tgt, k, device=device)
    bwd_cos, bwd_idx = topk_cosine(tgt, src, k, device=device)
    src_mean, tgt_mean = fwd_cos.mean(1), bwd_cos.mean(1)
    candidates = []
    for rows, idx, row_is_src in ((np.arange(len(src)), fwd_idx, True), (np.arange(len(tgt)), bwd_idx, False)):
        flat_rows = np.repeat(rows, idx.shape[1])
        s_idx, t_idx = (flat_rows, idx.ravel()) if row_is_src else (idx.ravel(), flat_rows)
        scores = margin(pair_cosines(src, tgt, s_idx, t_idx), src_mean[s_idx], tgt_mean[t_idx]).reshape(idx.shape)
        best = scores.argmax(1)
        for r, b in enumerate(best):
            s, t = (r, int(idx[r, b])) if row_is_src else (int(idx[r, b]), r)
            candidates.append(MinedPair(float(scores[r, b]), s, t))
    candidates.sort(key=lambda p: (-p.score, p.src, p.tgt))
    used_src, used_tgt, accepted = set(), set(), []
    for pair in candidates:
        if threshold is not None and pair.score < threshold:
            break
        if pair.src in used_src or pair.tgt in used_tgt:
            continue
        used_src.add(pair.src)
        used_tgt.add(pair.tgt)
        accepted.append(pair)
    return accepted
