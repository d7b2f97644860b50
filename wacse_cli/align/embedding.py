"""The embedding aligner: SimAlign's method (Jalili Sabet et al., 2020) on any encoder.

No aligner weights are needed, so it runs offline and can align with the very encoder that is
about to be trained. For each sentence pair:

1. contextual token vectors from one layer (``layer``; by default two thirds of the way up, which
   is layer 8 of a 12-layer model), with the encoder's prefix in front of the sentence as usual;
2. word similarities: each word's subword vectors averaged, then (cosine + 1) / 2 between source
   and target words, times SimAlign's distortion correction 1 - k * (i / (m-1) - j / (n-1))^2
   (k = ``distortion``, 0.5 by default; 0 turns it off) for word i of m and word j of n;
3. links from mutual argmax (``argmax``) or from IterMax (``itermax``, the default): mutual argmax,
   then a second round among the word pairs with at least one side still unaligned, where a pair
   with only one side free has its similarity multiplied by 0.9;
4. each link's score: the geometric mean of the two directions' softmax probabilities,
   sqrt(P(target word | source word) * P(source word | target word)), each a softmax over the
   pair's similarities standardised (minus their mean, over their standard deviation) and divided
   by a temperature of 0.15. Standardising makes the score independent of how spread out a
   model's cosines are (they change as the model trains), and a link scores near 1 only when each
   word clearly prefers the other; so the threshold flag means what it does for WSPAlign: 0 keeps
   every link found, 0.9 (the default) a high-precision subset.

Sentences of many pairs, both sides together, are sorted by length and run through the encoder
in padded batches; the forward pass stops at the chosen layer.
"""
from __future__ import annotations


import numpy as np
import torch

from ..errors import UsageError
from ..embed import inference_autocast
from ..model import SentenceEncoder
from .cooccurrence import CooccurrencePrior
from .words import token_words

METHODS = ("itermax", "argmax")
TEMPERATURE = 0.15
DISTORTION = 0.5
ITERMAX_FACTOR = 0.9
PRIORS = ("none", "ibm1")
PRIOR_WEIGHT = 0.5


def default_layer(num_layers: int) -> int:
    """Two thirds of the way up: layer 8 of 12 (SimAlign's choice for mBERT and XLM-R)."""
    return max(1, round(num_layers * 2 / 3))


# ----------------------------------------------------------------------------- links from similarities


def mutual_argmax(sim: np.ndarray) -> np.ndarray:
    """Boolean matrix: True where the row's best column and the column's best row agree."""
    out = np.zeros(sim.shape, dtype=bool)
    if sim.size == 0:
        return out
    rows = sim.argmax(axis=1)
    cols = sim.argmax(axis=0)
    for i, j in enumerate(rows):
        out[i, j] = cols[j] == i
    return out


def itermax(sim: np.ndarray, rounds: int = 2, factor: float = ITERMAX_FACTOR) -> np.ndarray:
    """Mutual argmax, then further rounds among pairs with a word still unaligned on one side.

    ``sim`` must be non-negative (cosines mapped to [0, 1]) so that a masked-out pair (0) never
    beats an allowed one. Sentences of one or two words on either side keep the first round only.
    """
    aligned = mutual_argmax(sim)
    if min(sim.shape, default=0) <= 2:
        return aligned
    for _ in range(rounds - 1):
        row_free = ~aligned.any(axis=1)
        col_free = ~aligned.any(axis=0)
        if not row_free.any() or not col_free.any():
            break
        allowed = row_free[:, None] | col_free[None, :]
        weight = np.where(row_free[:, None] & col_free[None, :], 1.0, factor) * allowed
        new = mutual_argmax(sim * weight) & allowed & ~aligned
        if not new.any():
            break
        aligned |= new
    return aligned


def distorted(sim: np.ndarray, distortion: float = DISTORTION) -> np.ndarray:
    """SimAlign's distortion correction: similarities times 1 - k * (relative position gap)^2."""
    m, n = sim.shape
    if distortion == 0 or m < 2 or n < 2:
        return sim
    gap = np.arange(m)[:, None] / (m - 1) - np.arange(n)[None, :] / (n - 1)
    return sim * (1 - distortion * gap**2)


def link_scores(sim: np.ndarray, temperature: float = TEMPERATURE, prior=None,
                prior_weight: float = PRIOR_WEIGHT) -> np.ndarray:
    """sqrt(P(j | i) * P(i | j)): softmaxes over rows and over columns of standardised
    similarities divided by ``temperature``. With a ``prior`` (P(j | i), P(i | j)) from the corpus,
    each direction is the mix (1 - w) * softmax + w * prior, w = ``prior_weight``."""
    logits = (sim - sim.mean()) / (sim.std() + 1e-9) / temperature
    forward = np.exp(logits - logits.max(axis=1, keepdims=True))
    forward /= forward.sum(axis=1, keepdims=True)
    backward = np.exp(logits - logits.max(axis=0, keepdims=True))
    backward /= backward.sum(axis=0, keepdims=True)
    if prior is not None:
        forward = (1 - prior_weight) * forward + prior_weight * prior[0]
        backward = (1 - prior_weight) * backward + prior_weight * prior[1]
    return np.sqrt(forward * backward)


def word_links(cos: np.ndarray, method: str = "itermax", temperature: float = TEMPERATURE,
               distortion: float = DISTORTION, prior=None,
               prior_weight: float = PRIOR_WEIGHT) -> list[tuple[int, int, float]]:
    """Links (i, j, score) of a word cosine matrix, scores rounded to 6 decimals. With a corpus
    ``prior``, the links are chosen on the mixed scores rather than on the similarities."""
    sim = distorted((cos + 1) / 2, distortion)
    scores = link_scores(sim, temperature, prior, prior_weight)
    basis = sim if prior is None else scores
    chosen = itermax(basis) if method == "itermax" else mutual_argmax(basis)
    return [(int(i), int(j), round(float(scores[i, j]), 6)) for i, j in zip(*np.nonzero(chosen))]


def word_vectors(token_vectors: torch.Tensor, words_of_tokens: list[list[int]],
                 n_words: int) -> tuple[torch.Tensor, list[int]]:
    """Unit vectors of the words that kept at least one token (the mean of their tokens' vectors),
    and which words those are."""
    member = torch.zeros(n_words, len(words_of_tokens), dtype=token_vectors.dtype)
    for t, words in enumerate(words_of_tokens):
        for w in words:
            member[w, t] = 1.0
    present = [w for w in range(n_words) if member[w].any()]
    member = member[present]
    vectors = (member / member.sum(dim=1, keepdim=True).clamp(min=1)) @ token_vectors
    return torch.nn.functional.normalize(vectors, dim=-1), present


def pair_links(src: torch.Tensor, src_words: list[list[int]], n_src: int, tgt: torch.Tensor,
               tgt_words: list[list[int]], n_tgt: int, prior=None, **options) -> list[tuple[int, int, float]]:
    """Links of one sentence pair from its two sides' token vectors (float32, on the CPU); ``prior``:
    the corpus's (P(j | i), P(i | j)) over all words of the pair."""
    src_vectors, src_present = word_vectors(src, src_words, n_src)
    tgt_vectors, tgt_present = word_vectors(tgt, tgt_words, n_tgt)
    if not src_present or not tgt_present:
        return []
    cos = (src_vectors @ tgt_vectors.T).numpy().astype(np.float64)
    if prior is not None:
        prior = tuple(p[np.ix_(src_present, tgt_present)] for p in prior)
    return [(src_present[i], tgt_present[j], s) for i, j, s in word_links(cos, prior=prior, **options)]


# ----------------------------------------------------------------------------- token vectors


class _StopForward(Exception):
    """Raised by a hook once the chosen layer has run, so the layers above it are skipped."""


def _layer_modules(backbone) -> list | None:
    for path in (("encoder", "layer"), ("encoder", "layers"), ("layers",), ("transformer", "layer")):
        module = backbone
        for name in path:
            module = getattr(module, name, None)
        if isinstance(module, torch.nn.ModuleList):
            return list(module)
    return None


def layer_states(backbone, layer: int, **inputs) -> torch.Tensor:
    """Hidden states after ``layer`` transformer layers (0: the embeddings), stopping there."""
    layers = _layer_modules(backbone)
    if layers is None or layer == 0 or layer > len(layers):
        return backbone(**inputs, output_hidden_states=True).hidden_states[layer]
    captured = {}

    def hook(module, args, output):
        captured["states"] = output[0] if isinstance(output, tuple) else output
        raise _StopForward

    handle = layers[layer - 1].register_forward_hook(hook)
    try:
        backbone(**inputs)
    except _StopForward:
        pass
    finally:
        handle.remove()
    return captured["states"]


class EmbedAligner:
    """Aligns sentence pairs with a :class:`SentenceEncoder`'s contextual token vectors."""

    name = "embed"

    def __init__(self, encoder: SentenceEncoder, *, layer: int | None = None, method: str = "itermax",
                 temperature: float = TEMPERATURE, distortion: float = DISTORTION, batch_size: int = 64,
                 max_length: int | None = None, prior: str = "none", prior_weight: float = PRIOR_WEIGHT,
                 langs: tuple[str | None, str | None] = (None, None)):
        num_layers = getattr(encoder.backbone.config, "num_hidden_layers", 12)
        layer = default_layer(num_layers) if layer is None else layer
        if not 0 <= layer <= num_layers:
            raise UsageError(f"--layer must be between 0 and {num_layers} for this model, not {layer}")
        if method not in METHODS:
            raise UsageError(f"unknown alignment method '{method}'", hint="use itermax or argmax")
        if temperature <= 0:
            raise UsageError(f"the temperature must be above 0, not {temperature}")
        if not 0 <= distortion <= 1:
            raise UsageError(f"--distortion must be between 0 and 1, not {distortion}")
        if prior not in PRIORS:
            raise UsageError(f"unknown alignment prior '{prior}'", hint="use none or ibm1")
        if not 0 <= prior_weight <= 1:
            raise UsageError(f"the prior weight must be between 0 and 1, not {prior_weight}")
        self.encoder, self.layer = encoder, layer
        self.link_options = {"method": method, "temperature": temperature, "distortion": distortion}
        if prior != "none":
            self.link_options.update(prior_weight=prior_weight)
        self.prior_name, self.prior = prior, None
        self.batch_size = batch_size
        self.max_length = min(max_length or encoder.model_max_length, encoder.model_max_length)  # whole sentences
        self.lang_ids = tuple(encoder.lang_id(lang) if lang in encoder.settings.languages else None for lang in langs)
        self.tokenizer = encoder.tokenizer
        self.truncated = 0

    def options(self) -> dict:
        """What, besides the model and the text, decides the links (part of the cache key)."""
        prior = {} if self.prior_name == "none" else {"prior": self.prior_name}
        return {"layer": self.layer, **self.link_options, **prior, "max_length": self.max_length,
                "prefix": self.encoder.settings.prefix}

    def fit(self, pairs: list[tuple[str, str]], spans: list[tuple[list, list]]) -> None:
        """Learn the corpus prior, if one was asked for, from every pair that will be aligned."""
        if self.prior_name == "ibm1":
            self.prior = CooccurrencePrior([_words(pair, pair_spans) for pair, pair_spans in zip(pairs, spans)])

    def align(self, pairs: list[tuple[str, str]], spans: list[tuple[list, list]], advance=lambda n: None) -> list:
        """Links for each pair; ``spans`` are each side's word spans."""
        sentences = [side for pair in pairs for side in pair]
        word_spans = [side for pair_spans in spans for side in pair_spans]
        ids, words_of_tokens = self._tokenize(sentences, word_spans)
        states = self._states(ids, [self.lang_ids[k % 2] for k in range(len(ids))], advance)
        out = []
        for p in range(len(pairs)):
            prior = None if self.prior is None else self.prior.probabilities(*_words(pairs[p], spans[p]))
            out.append(pair_links(states[2 * p], words_of_tokens[2 * p], len(spans[p][0]),
                                  states[2 * p + 1], words_of_tokens[2 * p + 1], len(spans[p][1]), prior=prior,
                                  **self.link_options))
            advance(0.5)  # the forward passes count for the other half of each pair
        return out

    def _tokenize(self, sentences: list[str], spans: list[list]) -> tuple[list[list[int]], list[list[list[int]]]]:
        prefix = self.encoder.settings.prefix
        enc = self.tokenizer([prefix + s for s in sentences], return_offsets_mapping=True,
                             return_special_tokens_mask=True)
        ids, words = [], []
        for k in range(len(sentences)):
            tokens, offsets = enc["input_ids"][k], enc["offset_mapping"][k]
            if len(tokens) > self.max_length:
                self.truncated += 1
                tail = _trailing_specials(enc["special_tokens_mask"][k])
                keep = list(range(self.max_length - tail)) + list(range(len(tokens) - tail, len(tokens)))
                tokens, offsets = [tokens[i] for i in keep], [offsets[i] for i in keep]
            ids.append(tokens)
            words.append(token_words(offsets, spans[k], shift=len(prefix)))
        return ids, words

    def _states(self, ids: list[list[int]], lang_ids: list[int | None], advance) -> list[torch.Tensor]:
        """Layer states of each sequence (float32, CPU), computed in length-sorted padded batches."""
        encoder, device = self.encoder, self.encoder.device
        order = sorted(range(len(ids)), key=lambda k: -len(ids[k]))
        out: list[torch.Tensor | None] = [None] * len(ids)
        was_training = encoder.training
        encoder.eval()
        with torch.inference_mode(), inference_autocast(device):
            for start in range(0, len(order), self.batch_size):
                chosen = order[start:start + self.batch_size]
                batch = self.tokenizer.pad({"input_ids": [ids[k] for k in chosen]}, return_tensors="pt").to(device)
                inputs = self._inputs(batch, [lang_ids[k] for k in chosen])
                states = layer_states(encoder.backbone, self.layer, **inputs)
                states = states.float().cpu()
                for row, k in enumerate(chosen):
                    out[k] = states[row, :len(ids[k])]
                advance(len(chosen) / 4)
        encoder.train(was_training)
        return out

    def _inputs(self, batch, lang_ids: list[int | None]) -> dict:
        if self.encoder.lang_embedding is None or all(i is None for i in lang_ids):
            return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        embeds = self.encoder.backbone.get_input_embeddings()(batch["input_ids"])
        rows = torch.tensor([-1 if i is None else i for i in lang_ids], device=embeds.device)
        extra = self.encoder.lang_embedding(rows.clamp(min=0)) * (rows >= 0)[:, None]
        return {"inputs_embeds": embeds + extra[:, None, :], "attention_mask": batch["attention_mask"]}


def _words(pair: tuple[str, str], spans: tuple[list, list]) -> tuple[list[str], list[str]]:
    return tuple([side[a:b] for a, b in side_spans] for side, side_spans in zip(pair, spans))


def _trailing_specials(special_mask: list[int]) -> int:
    count = 0
    for flag in reversed(special_mask):
        if not flag:
            break
        count += 1
    return count
