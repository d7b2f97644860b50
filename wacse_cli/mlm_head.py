"""The masked-language-model head that AWP (and RTL) predict words with.

A checkpoint's head (XLM-R's ``lm_head``, BERT's ``cls``) is used as it is. A model saved without
one (multilingual-e5, LaBSE-style encoders) gets transformers' freshly initialised head, which is
refused unless the recipe warms it up first (:mod:`wacse_cli.head_warmup`): a random head would
quietly train the encoder against noise.

``logits(states, candidates)`` scores only the ``candidates`` vocabulary rows: AWP over a
250k-token vocabulary spends most of its time in the decoder, and a step's targets are a few
hundred distinct tokens (recipe field ``awp_candidates``).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .errors import ModelError


def check_trained_head(name: str, head: str, missing_keys: list[str], *, warm_up: bool = False) -> bool:
    """True when the checkpoint holds ``head``. A missing head is refused unless ``warm_up``:
    transformers would fill it with random weights, and AWP (or RTL) would train against noise."""
    untrained = sorted(k for k in missing_keys if k.startswith(head + "."))
    if untrained and not warm_up:
        raise ModelError(
            f"model '{name}' has no trained masked-language-model head ({untrained[0]} is not in its checkpoint), "
            "so aligned word prediction would train against random weights",
            hint="--set mlm_warmup_steps=200 trains a head on your text first (the encoder frozen); or set "
                 "losses.awp=0 and losses.rtl=0 (TR and WTR need no head), or train from a model with an MLM head "
                 "such as xlm-roberta-base",
        )
    return not untrained


class MlmHead(nn.Module):
    """The checkpoint's MLM head, applied to chosen positions; ``trained`` is False for a fresh head."""

    def __init__(self, head: nn.Module, name: str, *, trained: bool = True):
        super().__init__()
        self.head = head
        self.name = name
        self.trained = trained

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.head(states)

    def decoder(self) -> nn.Linear:
        """The vocabulary projection: the last module whose outputs are the vocabulary."""
        linears = [m for m in self.head.modules() if isinstance(m, nn.Linear)]
        return max(linears, key=lambda m: m.out_features)

    def transform(self, states: torch.Tensor) -> torch.Tensor:
        """What the head computes before its vocabulary projection (dense, activation, layer norm),
        for any architecture's head: run it and stop at the decoder's input."""
        hook = self.decoder().register_forward_pre_hook(_stop_with_input)
        try:
            self.head(states)
        except _DecoderInput as reached:
            return reached.args[0]
        finally:
            hook.remove()
        raise ModelError(f"the {self.name} head never reached its vocabulary projection")

    def logits(self, states: torch.Tensor, candidates: torch.Tensor | None = None) -> torch.Tensor:
        """Scores over the whole vocabulary, or over the ``candidates`` token ids only (same values
        as the whole vocabulary's logits at those columns)."""
        if candidates is None:
            return self.head(states)
        decoder = self.decoder()
        bias = decoder.bias[candidates] if decoder.bias is not None else None
        return F.linear(self.transform(states), decoder.weight[candidates], bias)


class _DecoderInput(Exception):
    """Raised by the decoder's pre-hook to hand its input back (see :meth:`MlmHead.transform`)."""


def _stop_with_input(module: nn.Module, args: tuple) -> None:
    raise _DecoderInput(args[0])


def scored_targets(encoder, states: torch.Tensor, targets: torch.Tensor, candidates: int = 0,
                   generator: torch.Generator | None = None):
    """(logits, targets) of ``encoder``'s MLM head at ``states``: over the whole vocabulary, or with
    ``candidates`` over the targets plus random tokens only, the targets renumbered among them."""
    if not candidates:
        return encoder.mlm_logits(states), targets
    rows, targets = candidate_tokens(targets, encoder.mlm_head.decoder().out_features, candidates, generator)
    return encoder.mlm_head.logits(states, rows), targets


def candidate_tokens(targets: torch.Tensor, vocab_size: int, count: int, generator: torch.Generator | None = None):
    """(candidates, remapped targets): the distinct ``targets`` plus random tokens, ``count`` in all
    (at least the targets), and each target's index among them."""
    distinct = torch.unique(targets)
    extra = max(count - len(distinct), 0)
    if extra:
        drawn = torch.randint(vocab_size, (extra,), generator=generator, device="cpu").to(targets.device)
        candidates = torch.unique(torch.cat([distinct, drawn]))
    else:
        candidates = distinct
    return candidates, torch.searchsorted(candidates, targets)
