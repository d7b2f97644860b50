"""RTL, representation translation learning (DAP; Li et al., ACL 2023): a training-time decoder.

The decoder is a copy of the encoder's last two layers. For a pair (X, Y) it reads X's token
states (the encoder's output) followed by one slot per token of Y, and predicts Y's tokens with
the encoder's MLM head; the cross-entropy over Y's positions (CLS and padding excluded) is RTL.
With both directions, Y's states also reconstruct X.

A target slot is the embedding of ``<mask>`` passed through the encoder's own embedding layer,
which adds the position embedding of the slot's place in Y (numbered as the encoder numbers a
sentence on its own), the token-type embedding, LayerNorm and dropout; with a language embedding,
Y's language embedding is added to the ``<mask>`` embedding first, as it is for inputs. Attention
covers X's real tokens and Y's real slots. The decoder thus knows where each target token stands
and how long Y is, never which token it is: that has to come from X's representations.

The decoder lives in the training objective; it is trained and checkpointed with the encoder and
never saved into the model folder.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from .data import Side
from .errors import ModelError
from .losses import full_precision
from .mlm_head import scored_targets

DECODER_LAYERS = 2


class RtlDecoder(nn.Module):
    """A copy of an encoder's last layers, run over [source states; target slots]."""

    def __init__(self, layers: nn.ModuleList, config):
        super().__init__()
        self.layers = layers
        self.config = config  # the attention implementation decides the mask's form

    @classmethod
    def from_encoder(cls, encoder, n_layers: int = DECODER_LAYERS) -> "RtlDecoder":
        """Deep-copy ``backbone.encoder.layer[-n_layers:]`` (the BERT and XLM-R layout)."""
        backbone = encoder.backbone
        layers = getattr(getattr(backbone, "encoder", None), "layer", None)
        if not isinstance(layers, nn.ModuleList) or len(layers) < n_layers or not hasattr(backbone, "embeddings"):
            kind = getattr(backbone.config, "model_type", type(backbone).__name__)
            raise ModelError(f"RTL needs a BERT- or XLM-R-style encoder (embeddings, encoder.layer); '{kind}' is built "
                             "otherwise", hint="set losses.rtl=0 for this model")
        if encoder.mlm_head is None or encoder.tokenizer.mask_token_id is None:
            raise ModelError("RTL needs the encoder's MLM head and a <mask> token",
                             hint="load the encoder with with_mlm_head=True, or set losses.rtl=0")
        return cls(copy.deepcopy(layers[-n_layers:]), backbone.config)

    def forward(self, hidden: Tensor, mask: Tensor) -> Tensor:
        """The copied layers over ``hidden`` (B, L, d), attending where ``mask`` (B, L) is 1."""
        attention = _attention_mask(self.config, mask, hidden)
        for layer in self.layers:
            out = layer(hidden, attention_mask=attention)
            hidden = out[0] if isinstance(out, tuple) else out  # transformers 4 layers return tuples
        return hidden

    def translate(self, encoder, source_states: Tensor, source: Side, target: Side) -> Tensor:
        """Decoder states (T, d) at the T real, non-CLS positions of ``target`` (row-major)."""
        slots = target_slots(encoder, target)
        hidden = torch.cat([source_states.to(slots.dtype), slots], 1)
        out = self(hidden, torch.cat([source.mask, target.mask], 1))[:, source_states.shape[1]:]
        return out[predicted_positions(target)]


def predicted_positions(target: Side) -> Tensor:
    """(B, Lt) True at the target tokens RTL predicts: real tokens after the CLS position."""
    keep = target.mask.bool().clone()
    keep[:, 0] = False
    return keep


def target_slots(encoder, target: Side) -> Tensor:
    """(B, Lt, d): ``<mask>`` at every position of ``target``, through the encoder's embedding layer."""
    ids = torch.full_like(target.ids, encoder.tokenizer.mask_token_id)
    embeds = encoder.backbone.get_input_embeddings()(ids)
    if encoder.lang_embedding is not None:
        embeds = embeds + encoder.lang_embedding(target.lang)[:, None, :]
    return encoder.backbone.embeddings(inputs_embeds=embeds)


def rtl_logits(decoder: RtlDecoder, encoder, source_states: Tensor, source: Side, target: Side, context,
               candidates: int = 0):
    """(logits (T, V), target ids (T,)): the decoder under ``context`` (autocast), the MLM head in
    full precision (casting the vocabulary-sized head to bf16 on every call costs more than it saves).
    With ``candidates``, the logits of the targets plus random tokens only (V = ``candidates``) and
    each target's index among them."""
    with context:
        states = full_precision(decoder.translate(encoder, source_states, source, target))
    return scored_targets(encoder, states, target.ids[predicted_positions(target)], candidates)


def _attention_mask(config, mask: Tensor, hidden: Tensor):
    """The mask the layers expect: transformers 5 builds it for the attention implementation in
    use; transformers 4's layers take an additive (B, 1, 1, L) mask."""
    try:
        from transformers.masking_utils import create_bidirectional_mask
    except ImportError:
        return (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
    return create_bidirectional_mask(config=config, inputs_embeds=hidden, attention_mask=mask)
