"""One optimisation step of the WACSE objective over a large contrastive batch (GradCache).

TR is a contrastive loss: every pair in the batch is a negative for every other, so plain gradient
accumulation would shrink the negatives to a micro-batch. GradCache (Gao et al. 2021) keeps them:

1. forward every chunk without gradients and keep only the sentence vectors;
2. compute TR on all the vectors and back-propagate it to the vectors alone;
3. forward each chunk again with gradients, replaying the dropout randomness of step 1, and
   back-propagate ``sum(vectors * cached_gradient)`` plus the chunk's own AWP and WTR terms
   (those only involve one sentence pair, so they need no cache).

Memory grows with the chunk size, not the batch size; the gradients equal those of one full-batch
step. When one chunk holds the whole batch, the plain single pass is used.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor

from . import losses as L
from .data import Batch, Side, masked_word_inputs, word_vectors
from .model import SentenceEncoder
from .recipe import Losses


@dataclass
class StepLosses:
    total: float
    tr: float
    awp: float
    wtr: float
    word_pairs: int


class RandomState:
    """The CPU and CUDA generator states, captured and replayed so dropout repeats exactly."""

    def __init__(self, devices: list[int]):
        self.devices = devices
        self.cpu = torch.get_rng_state()
        self.cuda = [torch.cuda.get_rng_state(d) for d in devices]

    @contextlib.contextmanager
    def replay(self):
        with torch.random.fork_rng(devices=self.devices):
            torch.set_rng_state(self.cpu)
            for device, state in zip(self.devices, self.cuda):
                torch.cuda.set_rng_state(state, device)
            yield


class WacseObjective:
    """TR + AWP + WTR on an encoder; ``gather`` lets distributed training widen TR's negatives."""

    def __init__(self, encoder: SentenceEncoder, weights: Losses, *, temperature: float = 0.05,
                 symmetric: bool = True, autocast: torch.dtype | None = None, gather=None):
        self.encoder = encoder
        self.weights = weights
        self.temperature = temperature
        self.symmetric = symmetric
        self.autocast = autocast
        self.gather = gather or (lambda x, y: (x, y))
        self.mask_id = encoder.tokenizer.mask_token_id

    def _context(self):
        if self.autocast is not None:
            return torch.autocast(self.encoder.device.type, dtype=self.autocast)
        return contextlib.nullcontext()

    def encode_side(self, side: Side):
        lang = side.lang if self.encoder.lang_embedding is not None else None
        with self._context():
            vectors, states = self.encoder(side.ids, side.mask, lang)
        return L.full_precision(vectors), states

    def tr(self, x: Tensor, y: Tensor) -> Tensor:
        x, y = self.gather(x, y)
        return L.translation_ranking(x, y, self.temperature, self.symmetric)

    def wtr(self, batch: Batch, x_states: Tensor, y_states: Tensor, normalizer: float) -> Tensor:
        """Both directions: x_j against every word of Y, and y_k against every word of X."""
        p = batch.pairs
        wx, x_exists = word_vectors(L.full_precision(x_states), batch.x.words)
        wy, y_exists = word_vectors(L.full_precision(y_states), batch.y.words)
        forward = L.word_translation_ranking(wx[p.rows, p.src_word], wy[p.rows], y_exists[p.rows], p.tgt_word,
                                             self.temperature, normalizer)
        backward = L.word_translation_ranking(wy[p.rows, p.tgt_word], wx[p.rows], x_exists[p.rows], p.src_word,
                                              self.temperature, normalizer)
        return forward + backward

    def awp(self, batch: Batch, normalizer: float) -> Tensor:
        """Both directions: mask x_j in X and predict y_k's subtokens, and the reverse."""
        p = batch.pairs
        terms = []
        for side, other, word, other_word in ((batch.x, batch.y, p.src_word, p.tgt_word),
                                              (batch.y, batch.x, p.tgt_word, p.src_word)):
            ids, positions, targets, pair_index = masked_word_inputs(side, other, p.rows, word, other_word, self.mask_id)
            if len(targets) == 0:
                continue
            lang = side.lang[p.rows] if self.encoder.lang_embedding is not None else None
            device = self.encoder.device
            with self._context():
                states = self.encoder.token_states(ids, side.mask[p.rows], lang)
                logits = self.encoder.mlm_logits(states[positions[:, 0].to(device), positions[:, 1].to(device)])
            terms.append(L.aligned_word_prediction(logits, targets.to(device), pair_index.to(device), len(p.rows),
                                                   normalizer))
        return sum(terms) if terms else torch.zeros((), device=self.encoder.device)

    def local(self, batch: Batch, x_states: Tensor, y_states: Tensor, normalizer: float) -> tuple[Tensor, Tensor]:
        """(weighted AWP, weighted WTR) of one chunk, normalised by the whole batch's 2N word pairs."""
        zero = torch.zeros((), device=self.encoder.device)
        awp = self.weights.awp * self.awp(batch, normalizer) if self.weights.awp and len(batch.pairs.rows) else zero
        wtr = self.weights.wtr * self.wtr(batch, x_states, y_states, normalizer) if self.weights.wtr and len(batch.pairs.rows) else zero
        return awp, wtr


def _cuda_devices(encoder: SentenceEncoder) -> list[int]:
    device = encoder.device
    return [device.index or 0] if device.type == "cuda" else []


def train_step(objective: WacseObjective, batch: Batch, chunk_size: int) -> StepLosses:
    """Accumulate the gradient of the whole batch's loss into the encoder's ``.grad``."""
    weights = objective.weights
    normalizer = 2 * max(len(batch.pairs.rows), 1)
    n = len(batch)
    bounds = [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]
    if len(bounds) == 1:
        x, x_states = objective.encode_side(batch.x)
        y, y_states = objective.encode_side(batch.y)
        tr = objective.tr(x, y) if weights.tr else torch.zeros((), device=x.device)
        awp, wtr = objective.local(batch, x_states, y_states, normalizer)
        total = weights.tr * tr + awp + wtr
        total.backward()
        return _report(total, tr, awp, wtr, weights, len(batch.pairs.rows))

    chunks = [batch.chunk(s, e) for s, e in bounds]
    states, x_grads, y_grads = [], None, None
    tr_value = torch.zeros(())
    if weights.tr:
        x_parts, y_parts = [], []
        with torch.no_grad():
            for chunk in chunks:
                states.append(RandomState(_cuda_devices(objective.encoder)))
                x_parts.append(objective.encode_side(chunk.x)[0])
                y_parts.append(objective.encode_side(chunk.y)[0])
        x_all = torch.cat(x_parts).requires_grad_()
        y_all = torch.cat(y_parts).requires_grad_()
        tr_value = objective.tr(x_all, y_all)
        (weights.tr * tr_value).backward()
        x_grads, y_grads = x_all.grad, y_all.grad
    awp_sum, wtr_sum = 0.0, 0.0
    for i, ((start, stop), chunk) in enumerate(zip(bounds, chunks)):
        replay = states[i].replay() if states else contextlib.nullcontext()
        with replay:
            x, x_states = objective.encode_side(chunk.x)
            y, y_states = objective.encode_side(chunk.y)
            surrogate = torch.zeros((), device=x.device)
            if x_grads is not None:
                surrogate = (x * x_grads[start:stop]).sum() + (y * y_grads[start:stop]).sum()
            awp, wtr = objective.local(chunk, x_states, y_states, normalizer)
            (surrogate + awp + wtr).backward()
        awp_sum += float(awp.detach())
        wtr_sum += float(wtr.detach())
    total = weights.tr * float(tr_value.detach()) + awp_sum + wtr_sum
    return StepLosses(total, float(tr_value.detach()), _unweighted(awp_sum, weights.awp),
                      _unweighted(wtr_sum, weights.wtr), len(batch.pairs.rows))


def _unweighted(value: float, weight: float) -> float:
    return value / weight if weight else 0.0


def _report(total, tr, awp, wtr, weights: Losses, pairs: int) -> StepLosses:
    return StepLosses(float(total.detach()), float(tr.detach()), _unweighted(float(awp.detach()), weights.awp),
                      _unweighted(float(wtr.detach()), weights.wtr), pairs)
