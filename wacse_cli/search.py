"""Exact nearest neighbours, LASER's ratio margin, and bitext mining.

All scores are cosines of unit vectors. Exact search runs tile by tile in float32 (matrix
products and a top-k per tile), so memory stays bounded by the tile size rather than by
``queries x corpus``; the neighbours found, exactly or by an approximate FAISS index
(:mod:`wacse_cli.index`), are then rescored in float64 before anything is ranked or compared with
a margin threshold.

Ratio margin (Artetxe & Schwenk 2019), with k neighbours in both directions::

    margin(x, y) = cos(x, y) / ( sum_{z in NN_k(x)} cos(x, z) / 2k  +  sum_{z in NN_k(y)} cos(y, z) / 2k )
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

TILE = 4096


def to_tensor(x: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)


def topk_cosine(queries: np.ndarray, corpus: np.ndarray, k: int, *, device="cpu", tile: int = TILE):
    """(scores, indices), each (n_queries, min(k, n_corpus)), best first."""
    k = min(k, len(corpus))
    scores = np.zeros((len(queries), k), dtype=np.float32)
    indices = np.zeros((len(queries), k), dtype=np.int64)
    if k == 0 or len(queries) == 0:
        return scores, indices
    c = to_tensor(corpus, device)
    for start in range(0, len(queries), tile):
        q = to_tensor(queries[start:start + tile], device)
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


class Exact:
    """Exact top-k cosine over a fixed set of unit vectors: the default neighbour finder.

    Anything with ``vectors``, ``kind`` and ``topk(queries, k)`` can stand in for it, such as the
    FAISS indexes of :mod:`wacse_cli.index`; the callers below rescore whatever it finds exactly.
    """

    kind = "exact"

    def __init__(self, vectors: np.ndarray, device="cpu"):
        self.vectors = vectors
        self.device = device

    def topk(self, queries: np.ndarray, k: int):
        return topk_cosine(queries, self.vectors, k, device=self.device)


def margin(cos: np.ndarray, x_mean: np.ndarray, y_mean: np.ndarray) -> np.ndarray:
    """Ratio margin from cosines and the two neighbourhood means (broadcasting)."""
    return cos / ((x_mean + y_mean) / 2)


def pair_cosines(x: np.ndarray, y: np.ndarray, x_idx: np.ndarray, y_idx: np.ndarray, *,
                 block: int = 1 << 16) -> np.ndarray:
    """cos(x[x_idx[i]], y[y_idx[i]]) in float64, for exact rescoring of candidates.

    Block by block, so that millions of candidate pairs never need a float64 copy of each side.
    """
    out = np.empty(len(x_idx), dtype=np.float64)
    for start in range(0, len(x_idx), block):
        a = x[x_idx[start:start + block]].astype(np.float64)
        b = y[y_idx[start:start + block]].astype(np.float64)
        out[start:start + block] = np.einsum("ij,ij->i", a, b)
    return out


def rescored_topk(queries: np.ndarray, index, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(cosines, indices) of the k nearest rows of ``index.vectors`` per query, best first.

    Whatever the index finds (exactly, or approximately with FAISS) is rescored in float64 and
    ranked again, ties going to the lower index, so every index gives the same scores for the
    same candidates and ratio margins near a threshold such as 1.09 are not blurred by rounding.
    """
    _, idx = index.topk(queries, k)
    rows = np.repeat(np.arange(len(queries)), idx.shape[1])
    cos = pair_cosines(queries, index.vectors, rows, idx.ravel()).reshape(idx.shape)
    order = np.lexsort((idx, -cos), axis=-1)
    return np.take_along_axis(cos, order, 1), np.take_along_axis(idx, order, 1)


def _mean(cos: np.ndarray, k: int) -> np.ndarray:
    return cos[:, :k].mean(axis=1) if cos.shape[1] else np.zeros(len(cos))


def search(queries: np.ndarray, corpus: np.ndarray, k: int, *, score: str = "cosine", neighbours: int = 4, device="cpu",
           corpus_index=None, query_index=None):
    """Top-k corpus rows per query by cosine or by ratio margin; returns (scores, indices).

    Candidates come from ``corpus_index`` (exact by default); for the margin, the neighbourhoods
    of the candidate corpus rows among the queries come from ``query_index`` (exact by default).
    """
    corpus_index = Exact(corpus, device) if corpus_index is None else corpus_index
    if score == "cosine":
        return rescored_topk(queries, corpus_index, k)
    query_index = Exact(queries, device) if query_index is None else query_index
    cos, cand = rescored_topk(queries, corpus_index, max(k, neighbours))
    q_mean = _mean(cos, neighbours)
    c_mean = np.zeros(len(corpus))
    rows = np.unique(cand)  # only candidate rows need a neighbourhood
    c_mean[rows] = _mean(rescored_topk(corpus[rows], query_index, neighbours)[0], neighbours)
    scores = margin(cos, q_mean[:, None], c_mean[cand])
    order = np.lexsort((cand, -scores), axis=-1)[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(cand, order, 1)


@dataclass
class MinedPair:
    score: float
    src: int
    tgt: int


def mine(src: np.ndarray, tgt: np.ndarray, *, k: int = 4, threshold: float | None = None, device="cpu",
         src_index=None, tgt_index=None) -> list[MinedPair]:
    """LASER mining: the best margin candidate of every source and of every target sentence, merged,
    sorted by score and accepted greedily so that each sentence is used at most once.

    Neighbours come from ``tgt_index`` (for source rows) and ``src_index`` (for target rows), exact
    by default; either way their cosines are rescored exactly (see :func:`rescored_topk`).
    """
    if len(src) == 0 or len(tgt) == 0:
        return []
    fwd_cos, fwd_idx = rescored_topk(src, Exact(tgt, device) if tgt_index is None else tgt_index, k)
    bwd_cos, bwd_idx = rescored_topk(tgt, Exact(src, device) if src_index is None else src_index, k)
    src_mean, tgt_mean = fwd_cos.mean(1), bwd_cos.mean(1)
    candidates = []
    for cos, idx, row_is_src in ((fwd_cos, fwd_idx, True), (bwd_cos, bwd_idx, False)):
        rows = np.broadcast_to(np.arange(len(idx))[:, None], idx.shape)
        s_idx, t_idx = (rows, idx) if row_is_src else (idx, rows)
        scores = margin(cos, src_mean[s_idx], tgt_mean[t_idx])
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
