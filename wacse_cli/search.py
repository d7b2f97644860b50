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
OVERFETCH = 16  # extra candidates per query kept from the float16 products on a GPU


def to_tensor(x: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)


def topk_cosine(queries: np.ndarray, corpus: np.ndarray, k: int, *, device="cpu", tile: int = TILE):
    """(scores, indices), each (n_queries, min(k, n_corpus)), best first.

    On a GPU the tiles are compared in float16 on the tensor cores (10 times the float32 rate),
    ``OVERFETCH`` more candidates than asked are kept per query, and those are scored again in
    float32 before the top k are taken: a true neighbour is lost only if more than ``OVERFETCH``
    others come within float16's rounding (about 1e-3) of it. On a CPU the products are float32.
    """
    k = min(k, len(corpus))
    scores = np.zeros((len(queries), k), dtype=np.float32)
    indices = np.zeros((len(queries), k), dtype=np.int64)
    if k == 0 or len(queries) == 0:
        return scores, indices
    gpu = str(device).startswith("cuda")
    fetch = min(k + OVERFETCH, len(corpus)) if gpu else k
    c32 = to_tensor(corpus, device)
    c = c32.half() if gpu else c32
    corpus_tile = tile * 16 if gpu else tile  # fewer, larger products fill a GPU
    for start in range(0, len(queries), tile):
        q32 = to_tensor(queries[start:start + tile], device)
        q = q32.half() if gpu else q32
        best_s, best_i = None, None
        for c_start in range(0, len(c), corpus_tile):
            sims = q @ c[c_start:c_start + corpus_tile].T
            s, i = sims.topk(min(fetch, sims.shape[1]), dim=1)
            i = i + c_start
            if best_s is not None:
                s, order = torch.cat([best_s, s], 1).topk(fetch, dim=1)
                i = torch.cat([best_i, i], 1).gather(1, order)
            best_s, best_i = s, i
        if gpu:  # the candidates again in float32, then the top k
            exact = torch.einsum("qd,qcd->qc", q32, c32[best_i])
            best_s, order = exact.topk(k, dim=1)
            best_i = best_i.gather(1, order)
        scores[start:start + len(q)] = best_s.float().cpu().numpy()
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
                 block: int = 1 << 16, device="cpu") -> np.ndarray:
    """cos(x[x_idx[i]], y[y_idx[i]]) in float64, for exact rescoring of candidates.

    Block by block on ``device`` (where exact search already put the vectors), so that millions of
    candidate pairs never need a float64 copy of either side.
    """
    out = np.empty(len(x_idx), dtype=np.float64)
    xt, yt = to_tensor(x, device), to_tensor(y, device)
    for start in range(0, len(x_idx), block):
        a = xt[torch.from_numpy(x_idx[start:start + block]).to(device)].double()
        b = yt[torch.from_numpy(y_idx[start:start + block]).to(device)].double()
        out[start:start + block] = (a * b).sum(1).cpu().numpy()
    return out


def rescored_topk(queries: np.ndarray, index, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(cosines, indices) of the k nearest rows of ``index.vectors`` per query, best first.

    Whatever the index finds (exactly, or approximately with FAISS) is rescored in float64 and
    ranked again, ties going to the lower index, so every index gives the same scores for the
    same candidates and ratio margins near a threshold such as 1.09 are not blurred by rounding.
    """
    _, idx = index.topk(queries, k)
    rows = np.repeat(np.arange(len(queries)), idx.shape[1])
    cos = pair_cosines(queries, index.vectors, rows, np.ascontiguousarray(idx.ravel()),
                       device=getattr(index, "device", "cpu")).reshape(idx.shape)
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


def neighbourhood_means(src: np.ndarray, tgt: np.ndarray, k: int, *, device="cpu", src_index=None,
                        tgt_index=None) -> tuple[np.ndarray, np.ndarray]:
    """Mean cosine of each source row to its k nearest targets, and of each target row to its k
    nearest sources: the two denominators of the ratio margin (exact indexes by default)."""
    fwd, _ = rescored_topk(src, Exact(tgt, device) if tgt_index is None else tgt_index, k)
    bwd, _ = rescored_topk(tgt, Exact(src, device) if src_index is None else src_index, k)
    return _mean(fwd, k), _mean(bwd, k)


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
    score_parts, src_parts, tgt_parts = [], [], []
    for cos, idx, row_is_src in ((fwd_cos, fwd_idx, True), (bwd_cos, bwd_idx, False)):
        rows = np.broadcast_to(np.arange(len(idx))[:, None], idx.shape)
        s_idx, t_idx = (rows, idx) if row_is_src else (idx, rows)
        scores = margin(cos, src_mean[s_idx], tgt_mean[t_idx])
        best = scores.argmax(1)[:, None]
        score_parts.append(np.take_along_axis(scores, best, 1)[:, 0])
        src_parts.append(np.take_along_axis(s_idx, best, 1)[:, 0])
        tgt_parts.append(np.take_along_axis(t_idx, best, 1)[:, 0])
    scores, srcs, tgts = np.concatenate(score_parts), np.concatenate(src_parts), np.concatenate(tgt_parts)
    order = np.lexsort((tgts, srcs, -scores))  # best first; ties to the lower source, then target
    if threshold is not None:
        order = order[scores[order] >= threshold]
    used_src, used_tgt = np.zeros(len(src), dtype=bool), np.zeros(len(tgt), dtype=bool)
    accepted = []
    for i in order.tolist():
        s, t = int(srcs[i]), int(tgts[i])
        if used_src[s] or used_tgt[t]:
            continue
        used_src[s] = used_tgt[t] = True
        accepted.append(MinedPair(float(scores[i]), s, t))
    return accepted
