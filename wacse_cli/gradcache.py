"""One optimisation step of the WACSE objective over a large contrastive batch (GradCache).

TR is a contrastive loss: every pair in the batch is a negative for every other, so plain gradient
accumulation would shrink the negatives to a micro-batch. GradCache (Gao et al. 2021) keeps them:

1. forward every chunk without gradients and keep only the sentence vectors;
2. compute TR on all the vectors and back-propagate it to the vectors alone;
3. forward each chunk again with gradients, replaying the dropout randomness of step 1, and
   back-propagate ``sum(vectors * cached_gradient)`` plus the chunk's own AWP, WTR and RTL terms
   (those only involve one sentence pair, so they need no cache).

Multi-way rows work the same way with sentences in place of pairs: pass 1 encodes every present
cell, the loss over every pair of languages is taken on the cached (rows, languages, d) grid, and
pass 2 replays each chunk of cells.

Memory grows with the chunk size, not the batch size; the gradients equal those of one full-batch
step. When one chunk holds the whole batch, the plain single pass is used.

Under torchrun (``ranks.active``) each step function receives the global batch, trains on this
rank's share and back-propagates TR / world plus its own word-level terms; the trainer then sums
the gradients over the ranks (see ``distributed``).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor

from . import losses as L
from .data import (Batch, MultiwayBatch, Side, concat_sides, masked_word_inputs, stack_sides, word_keys,
                   word_vectors)
from .distributed import SINGLE, Ranks
from .mlm_head import scored_targets
from .model import SentenceEncoder
from .recipe import Losses
from .rtl import RtlDecoder, rtl_logits


@dataclass
class StepLosses:
    total: float
    tr: float
    awp: float
    wtr: float
    word_pairs: int
    rtl: float = 0.0


@dataclass
class MaskedCopies:
    """AWP's input for one direction: sentences with aligned words masked, and what each masked
    position predicts (see ``data.masked_word_inputs``)."""

    side: Side
    positions: Tensor  # (T, 2): (copy, token)
    targets: Tensor  # (T,) token ids of the other side's aligned word
    pair_index: Tensor  # (T,) word pair of each target
    pairs: int  # the word pairs AWP scores in this direction


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
    """TR + AWP + WTR (+ RTL) on an encoder; with ``ranks``, TR's negatives are every rank's sentences.

    The RTL decoder belongs here, not to the encoder: a copy of the encoder's last layers made when
    ``weights.rtl`` is on (or ``decoder`` given), trained alongside it and never exported.
    """

    def __init__(self, encoder: SentenceEncoder, weights: Losses, *, temperature: float = 0.05,
                 symmetric: bool = True, autocast: torch.dtype | None = None, ranks: Ranks = SINGLE,
                 decoder: RtlDecoder | None = None, rtl_both_directions: bool = True, joint_sides: bool | None = None,
                 awp_candidates: int = 0, wtr_negatives: str = "sentence", rtl_candidates: int = 0):
        self.encoder = encoder
        self.wtr_negatives = wtr_negatives  # sentence: the paper's WTR; batch: every word of the batch
        self.awp_candidates = awp_candidates  # 0: AWP's softmax over the whole vocabulary
        self.rtl_candidates = rtl_candidates  # 0: RTL's softmax over the whole vocabulary
        self.weights = weights
        self.temperature = temperature
        self.symmetric = symmetric
        self.autocast = autocast
        self.ranks = ranks
        self.mask_id = encoder.tokenizer.mask_token_id
        self.decoder = decoder if decoder is not None or not weights.rtl else RtlDecoder.from_encoder(encoder)
        self.rtl_both_directions = rtl_both_directions
        self.joint_sides = encoder.device.type == "cuda" if joint_sides is None else joint_sides

    def _context(self):
        if self.autocast is not None:
            return torch.autocast(self.encoder.device.type, dtype=self.autocast)
        return contextlib.nullcontext()

    def encode_side(self, side: Side):
        lang = side.lang if self.encoder.lang_embedding is not None else None
        with self._context():
            vectors, states = self.encoder(side.ids, side.mask, lang)
        return L.full_precision(vectors), states

    def encode_pair(self, batch: Batch, riders: list[MaskedCopies] | None = None):
        """(x, x_states, y, y_states, riders' states). With ``joint_sides`` (the default on a GPU,
        where the time of a small pass goes into launching kernels, not arithmetic) both sides go
        through one forward pass; otherwise each side is encoded at its own padded length, as
        padding costs arithmetic. ``riders`` (AWP's masked copies of X's and of Y's sentences) go
        through the same passes as their side's sentences: one pass costs less than two."""
        x_side, y_side = batch.x, batch.y
        if riders:
            x_side, y_side = concat_sides(x_side, riders[0].side), concat_sides(y_side, riders[1].side)
        n, m = len(batch.x), len(batch.y)
        if self.joint_sides:
            vectors, states = self.encode_side(stack_sides(x_side, y_side, self.encoder.tokenizer.pad_token_id))
            x, y = vectors[:len(x_side)], vectors[len(x_side):]
            x_states, y_states = states[:len(x_side), :x_side.ids.shape[1]], states[len(x_side):, :y_side.ids.shape[1]]
        else:
            (x, x_states), (y, y_states) = self.encode_side(x_side), self.encode_side(y_side)
        rider_states = [x_states[n:], y_states[m:]] if riders else None
        return x[:n], x_states[:n], y[:m], y_states[:m], rider_states

    def tr(self, x: Tensor, y: Tensor) -> Tensor:
        x, y = self.ranks.gather(x, y)
        return L.translation_ranking(x, y, self.temperature, self.symmetric)

    def wtr(self, batch: Batch, x_states: Tensor, y_states: Tensor, normalizer: float) -> Tensor:
        """Both directions: x_j against every word of Y, and y_k against every word of X (with
        ``wtr_negatives == "batch"``: against every word of the batch's Y, or X)."""
        p = batch.pairs
        wx, x_exists = word_vectors(L.full_precision(x_states), batch.x.words)
        wy, y_exists = word_vectors(L.full_precision(y_states), batch.y.words)
        if self.wtr_negatives == "batch":
            return (self._batch_wtr(wx[p.rows, p.src_word], batch.y, wy, y_exists, p.rows, p.tgt_word, normalizer)
                    + self._batch_wtr(wy[p.rows, p.tgt_word], batch.x, wx, x_exists, p.rows, p.src_word, normalizer))
        forward = L.word_translation_ranking(wx[p.rows, p.src_word], wy[p.rows], y_exists[p.rows], p.tgt_word,
                                             self.temperature, normalizer)
        backward = L.word_translation_ranking(wy[p.rows, p.tgt_word], wx[p.rows], x_exists[p.rows], p.src_word,
                                              self.temperature, normalizer)
        return forward + backward

    def _batch_wtr(self, query: Tensor, other: Side, vectors: Tensor, exists: Tensor, rows: Tensor, word: Tensor,
                   normalizer: float) -> Tensor:
        """The query words against every word of ``other`` in the batch; the aligned word's copies
        in other sentences (same subtokens) are left out rather than counted as negatives."""
        n_words = vectors.shape[1]
        keys = word_keys(other.ids, other.words, n_words).flatten(0, 1)  # (B*W, 3)
        positive = rows * n_words + word
        same_word = (keys.unsqueeze(0) == keys[positive].unsqueeze(1)).all(-1)  # (P, B*W)
        same_word[torch.arange(len(positive), device=positive.device), positive] = False
        excluded = same_word | ~exists.flatten().unsqueeze(0)
        return L.batch_word_translation_ranking(query, vectors.flatten(0, 1), excluded, positive,
                                                self.temperature, normalizer)

    def awp_copies(self, batch: Batch) -> list[MaskedCopies]:
        """AWP's inputs, X's copies (predicting Y's words) then Y's: each sentence AWP uses, with
        its aligned words masked (all of them unless recipe.awp_rows < 1)."""
        p = batch.pairs
        chosen = p.src_group >= 0
        rows = p.rows[chosen]
        copies = []
        for side, other, word, other_word, group in ((batch.x, batch.y, p.src_word, p.tgt_word, p.src_group),
                                                     (batch.y, batch.x, p.tgt_word, p.src_word, p.tgt_group)):
            ids, copy_rows, positions, targets, pair_index = masked_word_inputs(
                side, other, rows, word[chosen], other_word[chosen], group[chosen], self.mask_id)
            masked = Side(ids, side.mask[copy_rows], side.words[copy_rows], side.lang[copy_rows])
            copies.append(MaskedCopies(masked, positions, targets, pair_index, len(rows)))
        return copies

    def awp(self, batch: Batch, normalizer: float, copies: list[MaskedCopies] | None = None,
            states: list[Tensor | None] | None = None) -> Tensor:
        """Both directions: mask x_j in X and predict y_k's subtokens, and the reverse; each word
        pair's term is the mean over its predicted subtokens. ``states``: the copies' token states
        where they rode along in the sentences' forward pass; otherwise they are encoded here."""
        copies = self.awp_copies(batch) if copies is None else copies
        terms = []
        for i, copy in enumerate(copies):
            if len(copy.targets) == 0:
                continue
            copy_states = states[i] if states is not None else self.encode_side(copy.side)[1]
            # outside autocast: casting the vocabulary-sized decoder to bf16 on every call costs more than it saves
            masked = L.full_precision(copy_states[copy.positions[:, 0], copy.positions[:, 1]])
            logits, targets = scored_targets(self.encoder, masked, copy.targets, self.awp_candidates)
            terms.append(L.aligned_word_prediction(logits, targets, copy.pair_index, copy.pairs,
                                                   normalizer / batch.awp_scale))
        return sum(terms) if terms else torch.zeros((), device=self.encoder.device)

    def rtl(self, batch: Batch, x_states: Tensor, y_states: Tensor, normalizer: float) -> Tensor:
        """X's token states reconstruct Y's tokens (and, with both directions, Y's reconstruct X's)."""
        directions = [(x_states, batch.x, batch.y), (y_states, batch.y, batch.x)][:2 if self.rtl_both_directions else 1]
        terms = [L.representation_translation(*rtl_logits(self.decoder, self.encoder, states, source, target,
                                                             self._context(), self.rtl_candidates), normalizer)
                 for states, source, target in directions]
        return sum(terms)

    def rtl_tokens(self, batch: Batch) -> int:
        """RTL's normalizer: the target tokens the whole batch predicts (CLS and padding excluded)."""
        targets = [batch.y, batch.x] if self.rtl_both_directions else [batch.y]
        return max(sum(int(side.mask[:, 1:].sum()) for side in targets), 1)

    def local(self, batch: Batch, x_states: Tensor, y_states: Tensor, normalizer: float,
              tokens: int = 1, riders: list[MaskedCopies] | None = None,
              rider_states: list[Tensor] | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(weighted AWP, WTR, RTL) of one chunk: AWP and WTR normalised by the whole batch's 2N word
        pairs, RTL by the whole batch's ``tokens`` target tokens."""
        zero = torch.zeros((), device=self.encoder.device)
        awp = zero
        if self.weights.awp and len(batch.pairs.rows):
            awp = self.weights.awp * self.awp(batch, normalizer, riders, rider_states)
        wtr = self.weights.wtr * self.wtr(batch, x_states, y_states, normalizer) if self.weights.wtr and len(batch.pairs.rows) else zero
        rtl = self.weights.rtl * self.rtl(batch, x_states, y_states, tokens) if self.weights.rtl else zero
        return awp, wtr, rtl

    def multiway(self, batch: MultiwayBatch, vectors: Tensor) -> Tensor:
        """The multi-way loss on the cells' vectors (C, d), placed into the (N, L, d) grid."""
        grid = vectors.new_zeros((*batch.shape, vectors.shape[-1])).index_put((batch.row, batch.column), vectors)
        (grid,), present = self.ranks.gather(grid), self.ranks.gather_constant(batch.present())
        return L.multiway_ranking(grid, present, self.temperature, self.symmetric)


def _cuda_devices(encoder: SentenceEncoder) -> list[int]:
    device = encoder.device
    return [device.index or 0] if device.type == "cuda" else []


def train_step(objective: WacseObjective, batch: Batch, chunk_size: int) -> StepLosses:
    """Accumulate the gradient of the whole batch's loss into the encoder's ``.grad`` (under torchrun:
    ``batch`` is the global batch, and this rank's share of its loss)."""
    weights, ranks = objective.weights, objective.ranks
    normalizer = 2 * len(batch)  # the paper's 2N: AWP and WTR sum over every word pair, both directions
    tokens = objective.rtl_tokens(batch) if weights.rtl else 1
    pairs = len(batch.pairs.rows)
    if ranks.active:
        batch = batch.chunk(*ranks.shard(len(batch)))
    tr_share = weights.tr / ranks.world  # every rank computes the same global TR
    bounds = _bounds(len(batch), chunk_size)
    if len(bounds) == 1:
        # AWP's masked copies ride along in the sentences' pass; not with chunks (below), where the
        # second pass must replay the first one's dropout exactly
        riders = objective.awp_copies(batch) if weights.awp and len(batch.pairs.rows) else None
        x, x_states, y, y_states, rider_states = objective.encode_pair(batch, riders)
        tr = objective.tr(x, y) if weights.tr else torch.zeros((), device=x.device)
        terms = objective.local(batch, x_states, y_states, normalizer, tokens, riders, rider_states)
        (tr_share * tr + sum(terms)).backward()
        sums = ranks.sum([float(t.detach()) for t in terms], x.device)
        return _report(weights.tr * float(tr.detach()) + sum(sums), float(tr.detach()), sums, weights, pairs)

    chunks = [batch.chunk(s, e) for s, e in bounds]
    states, x_grads, y_grads = [], None, None
    tr_value = torch.zeros(())
    if weights.tr:
        x_parts, y_parts = [], []
        with torch.no_grad():
            for chunk in chunks:
                states.append(RandomState(_cuda_devices(objective.encoder)))
                x, _, y, _, _ = objective.encode_pair(chunk)
                x_parts.append(x)
                y_parts.append(y)
        x_all = torch.cat(x_parts).requires_grad_()
        y_all = torch.cat(y_parts).requires_grad_()
        tr_value = objective.tr(x_all, y_all)
        (tr_share * tr_value).backward()
        x_grads, y_grads = x_all.grad, y_all.grad
    sums = [0.0, 0.0, 0.0]  # weighted AWP, WTR, RTL
    for i, ((start, stop), chunk) in enumerate(zip(bounds, chunks)):
        replay = states[i].replay() if states else contextlib.nullcontext()
        with replay:
            x, x_states, y, y_states, _ = objective.encode_pair(chunk)
            surrogate = torch.zeros((), device=x.device)
            if x_grads is not None:
                surrogate = (x * x_grads[start:stop]).sum() + (y * y_grads[start:stop]).sum()
            terms = objective.local(chunk, x_states, y_states, normalizer, tokens)
            (surrogate + sum(terms)).backward()
        sums = [so_far + term.detach() for so_far, term in zip(sums, terms)]  # no sync per chunk: GPU keeps queued
    sums = ranks.sum([float(v) for v in sums], objective.encoder.device)
    total = weights.tr * float(tr_value.detach()) + sum(sums)
    return _report(total, float(tr_value.detach()), sums, weights, pairs)


def multiway_step(objective: WacseObjective, batch: MultiwayBatch, chunk_size: int) -> StepLosses:
    """Accumulate the gradient of ``tr`` x the multi-way loss; a chunk is ``chunk_size`` cells (under
    torchrun, ``batch`` holds this rank's rows and the loss is taken over every rank's)."""
    weight = objective.weights.tr
    share = weight / objective.ranks.world
    bounds = _bounds(len(batch.cells), chunk_size)
    if len(bounds) == 1:
        loss = objective.multiway(batch, objective.encode_side(batch.cells)[0])
        (share * loss).backward()
        return StepLosses(weight * float(loss.detach()), float(loss.detach()), 0.0, 0.0, 0)
    states, parts = [], []
    with torch.no_grad():
        for start, stop in bounds:
            states.append(RandomState(_cuda_devices(objective.encoder)))
            parts.append(objective.encode_side(batch.chunk(start, stop))[0])
    cached = torch.cat(parts).requires_grad_()
    loss = objective.multiway(batch, cached)
    (share * loss).backward()
    for (start, stop), state in zip(bounds, states):
        with state.replay():
            vectors, _ = objective.encode_side(batch.chunk(start, stop))
            (vectors * cached.grad[start:stop]).sum().backward()
    return StepLosses(weight * float(loss.detach()), float(loss.detach()), 0.0, 0.0, 0)


def _bounds(n: int, chunk_size: int) -> list[tuple[int, int]]:
    return [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]


def _unweighted(value: float, weight: float) -> float:
    return value / weight if weight else 0.0


def _report(total: float, tr: float, weighted: list, weights: Losses, pairs: int) -> StepLosses:
    """StepLosses from the weighted AWP, WTR and RTL terms (tensors or floats), reported unweighted."""
    awp, wtr, rtl = (float(v.detach()) if isinstance(v, Tensor) else v for v in weighted)
    return StepLosses(total, tr, _unweighted(awp, weights.awp), _unweighted(wtr, weights.wtr), pairs,
                      _unweighted(rtl, weights.rtl))
