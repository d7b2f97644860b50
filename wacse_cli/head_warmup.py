"""A fresh masked-LM head trained on the user's own sentences, the encoder frozen, before AWP.

Models such as multilingual-e5 ship without their MLM head. AWP needs one that already predicts
words, or the encoder would learn to please random weights. The warm-up masks 15% of each
sentence's word tokens (at least one), runs the frozen encoder without gradients, and trains only
the head's own layers and bias; the vocabulary projection, tied to the input embeddings, stays as
it is, so the encoder does not change. Accuracy on the masked tokens of held-out sentences
(before and after) says whether the head learnt anything.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.nn import functional as F

from .data import Encoded, pad_side
from .mlm_head import scored_targets
from .model import SentenceEncoder
from .progress import progress_bar

log = logging.getLogger(__name__)

MASK_SHARE = 0.15
HELD_OUT = (0.05, 20, 500)  # share of the sentences held out, at least, at most
LEARNING_RATE = 1e-3


@dataclass
class WarmupReport:
    steps: int
    held_out_sentences: int
    held_out_tokens: int
    accuracy_before: float  # top-1 over the whole vocabulary, on the held-out masked tokens
    accuracy_after: float
    loss_first: float
    loss_last: float

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return (f"MLM head warm-up ({self.steps} steps, encoder frozen): held-out masked-token accuracy "
                f"{self.accuracy_before:.1%} -> {self.accuracy_after:.1%} on {self.held_out_tokens} tokens")


def maskable(sentence: Encoded, special: set[int]) -> list[int]:
    """A sentence's word tokens where it knows its words (it has word pairs), else its non-special tokens."""
    words = [t for t, w in enumerate(sentence.words) if w >= 0]
    return words or [t for t, i in enumerate(sentence.ids) if i not in special]


def masked_batch(sentences: list[Encoded], mask_id: int, pad_id: int, rng: np.random.Generator,
                 special: set[int] = frozenset()):
    """(ids (B, L), attention mask, positions (T, 2), original ids (T,)): 15% of each sentence's
    maskable tokens (at least one) replaced by the mask token."""
    side = pad_side(sentences, [0] * len(sentences), pad_id)
    ids, mask = side.ids, side.mask
    positions = []
    for row, sentence in enumerate(sentences):
        words = maskable(sentence, special)
        if words:
            chosen = rng.choice(words, size=max(1, round(MASK_SHARE * len(words))), replace=False)
            positions.extend((row, int(t)) for t in sorted(chosen))
    where = torch.tensor(positions, dtype=torch.long).reshape(-1, 2)
    originals = ids[where[:, 0], where[:, 1]].clone()
    ids[where[:, 0], where[:, 1]] = mask_id
    return ids, mask, where, originals


def _masked_states(encoder: SentenceEncoder, batch) -> torch.Tensor:
    ids, mask, where, _ = batch
    device = encoder.device
    with torch.no_grad():
        states = encoder.token_states(ids.to(device), mask.to(device))
    return states[where[:, 0].to(device), where[:, 1].to(device)].float()


def _accuracy(encoder: SentenceEncoder, batches: list) -> tuple[float, int]:
    right = total = 0
    with torch.no_grad():
        for batch in batches:
            logits = encoder.mlm_head(_masked_states(encoder, batch))
            right += int((logits.argmax(-1).cpu() == batch[3]).sum())
            total += len(batch[3])
    return right / max(total, 1), total


def _trainable(encoder: SentenceEncoder) -> list[torch.nn.Parameter]:
    """The head's own parameters: not the vocabulary projection's weight (the input embeddings)."""
    decoder_weight = encoder.mlm_head.decoder().weight
    return [p for p in encoder.mlm_head.parameters() if p is not decoder_weight]


def warm_up_head(encoder: SentenceEncoder, sentences: list[Encoded], *, steps: int, batch_size: int,
                 candidates: int = 0, seed: int = 0, progress: bool = True) -> WarmupReport:
    """Train ``encoder.mlm_head`` on masked ``sentences``; the encoder's own weights do not change.
    ``candidates`` > 0 scores each step's masked tokens against that many vocabulary rows (its
    targets and random others) instead of the whole vocabulary, as AWP does with the same field."""
    if steps < 1 or len(sentences) < 2:
        raise ValueError("the warm-up needs at least one step and two sentences")
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    order = rng.permutation(len(sentences))
    share, low, high = HELD_OUT
    held = min(max(low, math.ceil(share * len(sentences))), high, len(sentences) // 2)
    held_out, train = [sentences[i] for i in order[:held]], [sentences[i] for i in order[held:]]
    mask_id, pad_id = encoder.tokenizer.mask_token_id, encoder.tokenizer.pad_token_id
    special = set(encoder.tokenizer.all_special_ids)
    probe = [masked_batch(held_out[i:i + batch_size], mask_id, pad_id, rng, special) for i in range(0, held, batch_size)]
    was_training = encoder.training
    encoder.eval()
    before, tokens = _accuracy(encoder, probe)
    parameters = _trainable(encoder)
    optimizer = torch.optim.AdamW(parameters, lr=LEARNING_RATE, weight_decay=0.0)
    losses = []
    with progress_bar(total=steps, desc="warming up the MLM head", unit="step", disable=not progress, leave=False) as bar:
        for _ in range(steps):
            chosen = rng.choice(len(train), size=min(batch_size, len(train)), replace=False)
            batch = masked_batch([train[i] for i in chosen], mask_id, pad_id, rng, special)
            logits, targets = scored_targets(encoder, _masked_states(encoder, batch), batch[3].to(encoder.device),
                                             candidates, generator)
            loss = F.cross_entropy(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            bar.update(1)
    after, _ = _accuracy(encoder, probe)
    encoder.train(was_training)
    for p in parameters:
        p.grad = None
    report = WarmupReport(steps, held, tokens, before, after, losses[0], losses[-1])
    log.info(report.line())
    return report
