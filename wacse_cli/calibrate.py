"""A score threshold the user does not have to guess: calibration against negatives made from the input.

The scores of an input bitext mix two kinds of pairs: translations, and noise. Pairs that are
certainly noise can be made from the input itself by re-pairing its sentences: each source with a
random other line's target (shuffled) and with its neighbouring lines' targets (shifted, the
misalignment of real crawls). Their scores show what noise scores like with this encoder on this
data, whatever the encoder's scale.

With ``f_in`` the density of the input's scores and ``f_neg`` that of the negatives, the input is
``(1 - pi) * f_good + pi * f_noise``; taking the negatives as a sample of the noise:

- ``pi``, the share of noise, is estimated as Storey's null proportion: the input pairs scoring
  below the negatives' median are noise (translations almost never score that low), and they are
  half of it;
- the density ratio ``r(s) = f_in(s) / f_neg(s)`` comes from an isotonic (monotone) fit of
  "input, not negative" against the score, with both classes weighted equally, as ``p / (1 - p)``;
- a pair's probability of being a translation is ``1 - pi / r(s)`` (clipped to [0, 1]): the local
  false discovery rate, monotone in the score.

Each kind of negative is fitted on its own, and a pair's probability is the lowest the kinds give
it: the input's noise may look like either kind (neighbouring lines of a catalogue are often
close in meaning, so shifted negatives score higher than shuffled ones), and the cut has to hold
under each. Noise that looks like neither (a truncated translation) is not counted: rules catch
most of it, and estimated precision is optimistic by its share.

The estimated precision of a cut is the mean probability of the pairs above it, its estimated
recall their summed probability over that of all pairs; the automatic cut is the lowest at which
the estimated precision still reaches the target.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BINS = 2000  # quantile bins of the pooled scores the isotonic fit works on
NEGATIVE_KINDS = ("shuffled", "shifted")


def negative_pairs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source rows, target rows, kind) of negatives over ``n`` pairs: every source with a
    random other target (kind 0, shuffled), and with the next and the previous line's target
    (kind 1, shifted); kinds index :data:`NEGATIVE_KINDS`."""
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    rng = np.random.default_rng(seed)
    rows = np.arange(n)
    shuffled = (rows + rng.integers(1, n, size=n)) % n  # never the pair's own target
    src = np.concatenate([rows, rows[:-1], rows[1:]])
    tgt = np.concatenate([shuffled, rows[1:], rows[:-1]])
    kind = np.concatenate([np.zeros(n, np.int64), np.ones(2 * (n - 1), np.int64)])
    return src, tgt, kind


def isotonic(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pool adjacent violators: the non-decreasing sequence closest to ``values`` in weighted
    least squares."""
    means, sizes, counts = [], [], []
    for value, weight in zip(values.tolist(), weights.tolist()):
        means.append(value)
        sizes.append(weight)
        counts.append(1)
        while len(means) > 1 and means[-2] >= means[-1]:
            total = sizes[-2] + sizes[-1]
            merged = (means[-2] * sizes[-2] + means[-1] * sizes[-1]) / total if total > 0 else means[-1]
            count = counts[-2] + counts[-1]
            del means[-1], sizes[-1], counts[-1]
            means[-1], sizes[-1], counts[-1] = merged, total, count
    return np.repeat(np.array(means), counts)


@dataclass
class Calibration:
    """Score -> probability that a pair is a translation (see the module's docstring)."""

    noise_share: float  # pi: estimated share of the input that is noise
    edges: np.ndarray  # upper score of each bin
    probs: np.ndarray  # probability of a translation in each bin (non-decreasing)

    def probability(self, scores: np.ndarray) -> np.ndarray:
        return self.probs[np.minimum(np.searchsorted(self.edges, scores), len(self.probs) - 1)]


def fit(inputs: np.ndarray, negatives: np.ndarray, bins: int = BINS) -> Calibration:
    """Calibrate the scores of the input pairs against those of negatives made from them."""
    inputs, negatives = np.asarray(inputs, float), np.asarray(negatives, float)
    if len(negatives) == 0:
        return Calibration(0.0, np.array([np.inf]), np.array([1.0]))
    median = np.median(negatives)
    noise = min(1.0, 2 * float(np.mean(inputs < median))) if len(inputs) else 0.0
    pooled = np.concatenate([inputs, negatives])
    edges = np.unique(np.quantile(pooled, np.linspace(0, 1, bins + 1)[1:]))
    edges[-1] = np.inf
    in_w = np.bincount(np.searchsorted(edges, inputs), minlength=len(edges)) / max(len(inputs), 1)
    neg_w = np.bincount(np.searchsorted(edges, negatives), minlength=len(edges)) / len(negatives)
    total = in_w + neg_w
    share = isotonic(np.divide(in_w, total, out=np.zeros_like(total), where=total > 0), total)
    ratio = np.divide(share, 1 - share, out=np.full_like(share, np.inf), where=share < 1)
    probs = np.clip(1 - np.divide(noise, ratio, out=np.ones_like(ratio), where=ratio > 0), 0, 1)
    probs[ratio == 0] = 0.0
    return Calibration(noise, edges, np.maximum.accumulate(probs))


@dataclass
class Calibrations:
    """One calibration per kind of negative; a pair's probability is the lowest of them."""

    parts: dict[str, Calibration]

    @property
    def noise_share(self) -> float:
        return max((c.noise_share for c in self.parts.values()), default=0.0)

    def probability(self, scores: np.ndarray) -> np.ndarray:
        if not self.parts:
            return np.ones(len(scores))
        return np.min([c.probability(scores) for c in self.parts.values()], axis=0)


def fit_by_kind(inputs: np.ndarray, negatives: np.ndarray, kinds: np.ndarray) -> Calibrations:
    return Calibrations({name: fit(inputs, negatives[kinds == k]) for k, name in enumerate(NEGATIVE_KINDS)
                         if np.any(kinds == k)})


@dataclass
class Cut:
    threshold: float
    kept: int
    precision: float  # estimated
    recall: float  # estimated, among the scored pairs


def cut_at(scores: np.ndarray, probs: np.ndarray, threshold: float) -> Cut:
    keep = scores >= threshold
    total = float(probs.sum())
    kept_probs = float(probs[keep].sum())
    return Cut(float(threshold), int(keep.sum()), kept_probs / keep.sum() if keep.any() else 1.0,
               kept_probs / total if total > 0 else 0.0)


def choose_cut(scores: np.ndarray, probs: np.ndarray, precision: float) -> Cut:
    """The lowest threshold at which the kept pairs' estimated precision is at least ``precision``
    (keeping nothing, with an infinite threshold, if none is)."""
    if len(scores) == 0:
        return Cut(float("inf"), 0, 1.0, 0.0)
    order = np.argsort(-scores, kind="stable")
    running = np.cumsum(probs[order]) / np.arange(1, len(order) + 1)
    ranked = scores[order]
    last_of_tie = np.append(ranked[1:] != ranked[:-1], True)  # a cut keeps every pair of equal score
    ok = np.flatnonzero((running >= precision) & last_of_tie)
    if len(ok) == 0:
        return Cut(float("inf"), 0, 1.0, 0.0)
    return cut_at(scores, probs, float(ranked[ok[-1]]))
