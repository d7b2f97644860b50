"""The training objectives, each a pure function: tensors in, a scalar out.

Every loss returns ``sum of per-item losses / normalizer``. The normalizer defaults to the number of
items; GradCache passes the item count of the whole batch so that chunk losses add up to the loss
of the full batch.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor


def full_precision(t: Tensor) -> Tensor:
    """bf16/fp16 activations are promoted to float32 for the loss; float64 stays float64."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _normalise(total: Tensor, count: int, normalizer: float | None) -> Tensor:
    return total / (normalizer if normalizer is not None else max(count, 1))


def cosine_logits(a: Tensor, b: Tensor, temperature: float) -> Tensor:
    """cos(a_i, b_j) / temperature for every i, j."""
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature


def translation_ranking(src: Tensor, tgt: Tensor, temperature: float = 0.05, symmetric: bool = True) -> Tensor:
    """TR, the in-batch contrastive loss on sentence vectors (N pairs, row i of each side is pair i)::

        S_ij = cos(src_i, tgt_j) / tau
        TR   = -1/N sum_i log softmax_j(S_i.)_i                      (src -> tgt)
        symmetric: (TR_src->tgt + TR_tgt->src) / 2, the second using S transposed
    """
    logits = cosine_logits(src, tgt, temperature)
    labels = torch.arange(len(src), device=src.device)
    forward = F.cross_entropy(logits, labels)
    if not symmetric:
        return forward
    return (forward + F.cross_entropy(logits.T, labels)) / 2


def aligned_word_prediction(logits: Tensor, targets: Tensor, pair_index: Tensor, n_pairs: int,
                            normalizer: float | None = None) -> Tensor:
    """AWP: predict the aligned word's subtokens at the masked positions of the source word.

    ``logits`` (T, V) at the T masked positions that carry a target (after clipping the longer word
    to the shorter one's subtoken count), ``targets`` (T,) the aligned word's subtoken ids,
    ``pair_index`` (T,) which of the ``n_pairs`` word pairs each position belongs to::

        AWP = 1/normalizer sum_p mean_{t in p} -log softmax(logits_t)[target_t]

    Both directions are passed as separate pairs, so the paper's average over 2N is normalizer=2N.
    """
    if n_pairs == 0:
        return logits.sum() * 0.0
    token_loss = F.cross_entropy(full_precision(logits), targets, reduction="none")
    per_pair = torch.zeros(n_pairs, device=logits.device, dtype=token_loss.dtype).index_add(0, pair_index, token_loss)
    counts = torch.zeros(n_pairs, device=logits.device, dtype=token_loss.dtype).index_add(
        0, pair_index, torch.ones_like(token_loss))
    return _normalise((per_pair / counts.clamp(min=1)).sum(), n_pairs, normalizer)


def word_translation_ranking(query: Tensor, candidates: Tensor, candidate_mask: Tensor, positive: Tensor,
                             temperature: float = 0.05, normalizer: float | None = None) -> Tensor:
    """WTR: the vector of word x_j against the vectors of every word of Y, y_k the positive.

    ``query`` (P, d): x_j's vector (mean of its subtoken states) for P word pairs; ``candidates``
    (P, W, d): the word vectors of Y, ``candidate_mask`` (P, W) True where a word exists;
    ``positive`` (P,) the index k of the aligned word::

        WTR = 1/normalizer sum_p -log softmax_w( cos(q_p, c_pw) / tau  over existing w )[k_p]
    """
    if len(query) == 0:
        return candidates.sum() * 0.0
    logits = (F.normalize(query, dim=-1).unsqueeze(1) * F.normalize(candidates, dim=-1)).sum(-1) / temperature
    return _ranking(full_precision(logits), ~candidate_mask, positive, normalizer)


def batch_word_translation_ranking(query: Tensor, candidates: Tensor, excluded: Tensor, positive: Tensor,
                                   temperature: float = 0.05, normalizer: float | None = None) -> Tensor:
    """WTR with the batch's words as negatives: x_j against every word of every Y in the batch.

    ``query`` (P, d) as in :func:`word_translation_ranking`; ``candidates`` (N, d) every word of the
    batch's Y sentences, flattened; ``excluded`` (P, N) True for candidates left out of pair p's
    softmax (padding, and the same word as the positive elsewhere in the batch); ``positive`` (P,)
    the index of the aligned word among the N::

        WTR = 1/normalizer sum_p -log softmax_n( cos(q_p, c_n) / tau  over n not excluded )[positive_p]
    """
    if len(query) == 0:
        return candidates.sum() * 0.0
    return _ranking(cosine_logits(full_precision(query), full_precision(candidates), temperature), excluded, positive,
                    normalizer)


def _ranking(logits: Tensor, excluded: Tensor, positive: Tensor, normalizer: float | None) -> Tensor:
    """Sum over rows of -log softmax(logits, the excluded left out)[positive], / normalizer."""
    per_row = F.cross_entropy(logits.masked_fill(excluded, torch.finfo(logits.dtype).min), positive, reduction="none")
    return _normalise(per_row.sum(), len(logits), normalizer)


def multiway_ranking(vectors: Tensor, present: Tensor, temperature: float = 0.05, symmetric: bool = True) -> Tensor:
    """Multi-way contrastive loss: every language is an anchor.

    ``vectors`` (N, L, d): row n is one sentence in L languages; ``present`` (N, L) marks the
    cells that exist. For every pair of languages (a, b), TR is taken over the rows where both
    exist (other such rows are the negatives); the loss is the mean over language pairs that have
    at least two rows in common.
    """
    losses = []
    for a, b in itertools.combinations(range(vectors.shape[1]), 2):
        rows = present[:, a] & present[:, b]
        if int(rows.sum()) >= 2:
            losses.append(translation_ranking(vectors[rows, a], vectors[rows, b], temperature, symmetric))
    if not losses:
        return vectors.sum() * 0.0
    return torch.stack(losses).mean()


def representation_translation(logits: Tensor, targets: Tensor, normalizer: float | None = None) -> Tensor:
    """RTL (DAP): cross-entropy of the decoder's predictions of the target tokens.

    ``logits`` (T, V) at the T target positions (CLS and padding excluded), ``targets`` (T,)::

        RTL = 1/normalizer sum_t -log softmax(logits_t)[target_t]
    """
    if len(targets) == 0:
        return logits.sum() * 0.0
    total = F.cross_entropy(full_precision(logits), targets, reduction="sum")
    return _normalise(total, len(targets), normalizer)
