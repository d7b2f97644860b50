"""A corpus-level prior for the embedding aligner: IBM Model 1 translation tables of the text itself.

The embedding aligner looks at one sentence pair at a time, with the encoder's own similarities:
when the encoder being trained also aligns its data, the links it finds are the matches it is
already surest of, so the word-level objectives learn little from them. Which words co-occur
across the whole bitext is information the encoder does not see. IBM Model 1 (Brown et al.,
1993), fitted by EM on the very text being aligned (no extra data or weights), turns it into
posterior link probabilities:

    t(f | e)                 the translation table of "e generates f", with a NULL word on e's side
    P(i | j)  = t(y_j | x_i) / (t(y_j | NULL) + sum_i' t(y_j | x_i'))     (model X -> Y)
    P(j | i)  = t(x_i | y_j) / (t(x_i | NULL) + sum_j' t(x_i | y_j'))     (model Y -> X)

The aligner mixes them into its own per-direction softmaxes (see ``embedding.link_scores``).
Words are compared lower-cased with surrounding punctuation stripped, so that "File:" and "file"
count as one word.
"""
from __future__ import annotations

import unicodedata

import numpy as np

ITERATIONS = 5
NULL = 0  # id of the NULL word in every vocabulary


def normal_form(word: str) -> str:
    """Lower case, without the punctuation around the word (kept if the word is nothing else)."""
    lowered = word.lower()
    start, end = 0, len(lowered)
    while start < end and unicodedata.category(lowered[start])[0] in "PS":
        start += 1
    while end > start and unicodedata.category(lowered[end - 1])[0] in "PS":
        end -= 1
    return lowered[start:end] or lowered


class TranslationTable:
    """IBM Model 1 of ``target | source`` fitted on sentences given as lists of words.

    EM runs on flat arrays: one cell per (source word or NULL, target token) of every sentence
    pair, so that a million-pair file needs no Python loop over words."""

    def __init__(self, sources: list[list[str]], targets: list[list[str]], iterations: int = ITERATIONS):
        self.src_ids: dict[str, int] = {"": NULL}
        self.tgt_ids: dict[str, int] = {}
        cells_e, cells_f, cells_token = [], [], []
        token = 0
        for s, t in zip(sources, targets):
            e = np.array([NULL] + [self.src_ids.setdefault(w, len(self.src_ids)) for w in s], dtype=np.int64)
            f = np.array([self.tgt_ids.setdefault(w, len(self.tgt_ids)) for w in t], dtype=np.int64)
            cells_e.append(np.repeat(e, len(f)))
            cells_f.append(np.tile(f, len(e)))
            cells_token.append(np.tile(np.arange(token, token + len(f)), len(e)))
            token += len(f)
        self.width = max(len(self.tgt_ids), 1)
        keys = np.concatenate(cells_e) * self.width + np.concatenate(cells_f) if cells_e else np.zeros(0, np.int64)
        self.keys, cell_key = np.unique(keys, return_inverse=True)
        self.table = self._fit(cell_key, np.concatenate(cells_token) if cells_token else keys, token, iterations)

    def _fit(self, cell_key: np.ndarray, cell_token: np.ndarray, tokens: int, iterations: int) -> np.ndarray:
        key_source = self.keys // self.width
        table = np.ones(len(self.keys))  # uniform start: every t(f | e) equal
        for _ in range(iterations):
            probs = table[cell_key]
            posterior = probs / np.bincount(cell_token, probs, minlength=tokens)[cell_token]
            counts = np.bincount(cell_key, posterior, minlength=len(self.keys))
            table = counts / np.bincount(key_source, counts, minlength=len(self.src_ids))[key_source]
        return table

    def _lookup(self, e: np.ndarray, f: np.ndarray) -> np.ndarray:
        """t(f | e) for every (e, f) of the two id arrays (0 for pairs never seen together)."""
        if len(self.keys) == 0:
            return np.zeros((len(e), len(f)))
        wanted = e[:, None] * self.width + f[None, :]
        at = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        found = (e[:, None] >= 0) & (f[None, :] >= 0) & (self.keys[at] == wanted)
        return np.where(found, self.table[at], 0.0)

    def posterior(self, source: list[str], target: list[str]) -> np.ndarray:
        """(len(source), len(target)): P(target word j comes from source word i), the NULL word's
        share left out (so a column sums to at most 1)."""
        e = np.array([NULL] + [self.src_ids.get(w, -1) for w in source], dtype=np.int64)
        f = np.array([self.tgt_ids.get(w, -1) for w in target], dtype=np.int64)
        probs = self._lookup(e, f)
        probs = probs / np.maximum(probs.sum(axis=0, keepdims=True), 1e-300)
        return probs[1:]


class CooccurrencePrior:
    """Both directions' IBM Model 1 posteriors for the sentence pairs of one bitext."""

    def __init__(self, pairs: list[tuple[list[str], list[str]]], iterations: int = ITERATIONS):
        sources = [[normal_form(w) for w in s] for s, _ in pairs]
        targets = [[normal_form(w) for w in t] for _, t in pairs]
        self.forward = TranslationTable(sources, targets, iterations)   # X generates Y: P(i | j)
        self.backward = TranslationTable(targets, sources, iterations)  # Y generates X: P(j | i)

    def probabilities(self, source: list[str], target: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(P(j | i) with rows over source words, P(i | j) with columns over target words)."""
        source = [normal_form(w) for w in source]
        target = [normal_form(w) for w in target]
        return self.backward.posterior(target, source).T, self.forward.posterior(source, target)
