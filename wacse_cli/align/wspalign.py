"""The WSPAlign aligner: word alignment as span prediction (Wu et al., ACL 2023; after Nagata et
al., 2020), written from the papers' description.

For each source word, the question is the whole source sentence with that word wrapped in
`` ¶ `` markers and the context is the target sentence; an extractive question-answering model
gives start and end logits over the tokens. Scoring follows WSPAlign's own inference code
(WSPAlign.InferEval ``inference.py``, which runs transformers' question-answering pipeline):

- probabilities: a softmax of the start logits and one of the end logits, each over the context
  tokens plus the first position (``<s>``/``[CLS]``); that position takes part in the softmax but
  is never an answer, so every word gets its best span;
- the best span: start and end tokens both in the context, end >= start, at most ``max_span`` (15)
  tokens long, with the largest p_start(start) * p_end(end); that product is its score;
- the source word is linked to every target word lying wholly inside the span's characters, each
  link with the span's score divided by the number of those words (a long span cannot dominate).

Both directions are run (target words asking about the source too); :func:`combine` adds a
backward score only to pairs the forward direction proposed, and a pair is kept when the sum
passes the threshold (0.9 in WACSE). Queries of many sentence pairs are flattened, sorted by
length and run in padded batches, under bf16 autocast on a GPU.

The published WSPAlign weights are licensed CC-BY-NC-SA-4.0; loading them prints a notice once.
"""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import torch

from ..embed import inference_autocast
from ..errors import ModelError, UsageError
from ..model import EncoderSettings, load_error, quiet_stdout, fingerprint, quiet_transformers, resolve_device
from .words import token_words, words_that_fit

DEFAULT_MODEL = "qiyuw/WSPAlign-xlm-base"
MARK = "¶"
MAX_SPAN = 15  # the question-answering pipeline's max_answer_len
LICENCE_NOTICE = (
    "note: the WSPAlign weights ({name}) are licensed CC-BY-NC-SA-4.0 by their authors: "
    "non-commercial use only, and alignments or models derived from them are shared alike"
)
_noticed: set[str] = set()


# ----------------------------------------------------------------------------- pure parts


def question(sentence: str, span: tuple[int, int]) -> str:
    """The sentence with the word at ``span`` wrapped in markers: ``a ¶ b ¶ c``."""
    before, word, after = sentence[:span[0]].rstrip(), sentence[span[0]:span[1]], sentence[span[1]:].lstrip()
    return " ".join(part for part in (before, MARK, word, MARK, after) if part)


def best_spans(start_logits: torch.Tensor, end_logits: torch.Tensor, context: torch.Tensor, max_span: int = MAX_SPAN):
    """For each row: (start, end, score) of the best span, as defined above.

    ``context`` (bool, same shape as the logits) marks the context tokens; position 0 joins the
    softmax but never an answer.
    """
    start_logits, end_logits = start_logits.float(), end_logits.float()
    in_softmax = context.clone()
    in_softmax[:, 0] = True
    log_start = torch.log_softmax(start_logits.masked_fill(~in_softmax, float("-inf")), dim=-1)
    log_end = torch.log_softmax(end_logits.masked_fill(~in_softmax, float("-inf")), dim=-1)
    answer = context.clone()
    answer[:, 0] = False
    length = start_logits.shape[1]
    index = torch.arange(length, device=start_logits.device)
    offset = index[None, :] - index[:, None]  # end - start
    band = (offset >= 0) & (offset < max_span)
    valid = band[None] & answer[:, :, None] & answer[:, None, :]
    scores = (log_start[:, :, None] + log_end[:, None, :]).masked_fill(~valid, float("-inf"))
    best, flat = scores.flatten(1).max(dim=-1)
    return flat // length, flat % length, best.exp()


def words_inside(chars: tuple[int, int], spans: list[tuple[int, int]]) -> list[int]:
    """The words whose characters lie wholly inside ``chars`` (start, end), in order."""
    return [w for w, (a, b) in enumerate(spans) if a >= chars[0] and b <= chars[1]]


def combine(forward: dict[tuple[int, int], float],
            backward: dict[tuple[int, int], float]) -> list[tuple[int, int, float]]:
    """One score per word pair the forward direction proposed: its forward score plus the backward
    one where the backward direction proposed it too. Both map (source word, target word) to a
    span's score over its word count. Scores are rounded to 6 decimals."""
    return [(i, j, round(score + backward.get((i, j), 0.0), 6)) for (i, j), score in sorted(forward.items())]


# ----------------------------------------------------------------------------- loading


def load_qa_model(name_or_path: str, device: str = "auto"):
    """(tokenizer, question-answering model, fingerprint), printing the licence notice once."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    quiet_transformers()
    local = Path(name_or_path).expanduser()
    source = str(local) if local.exists() else name_or_path
    try:
        with quiet_stdout():
            tokenizer = AutoTokenizer.from_pretrained(source)
            model, info = AutoModelForQuestionAnswering.from_pretrained(source, output_loading_info=True)
    except (OSError, ValueError, KeyError) as exc:
        raise load_error(name_or_path, exc) from None
    check_span_head(name_or_path, info.get("missing_keys", []))
    origin = f"{name_or_path} {getattr(model.config, '_name_or_path', '')}".lower()
    if "wspalign" in origin and name_or_path not in _noticed:
        _noticed.add(name_or_path)
        print(LICENCE_NOTICE.format(name=name_or_path), file=sys.stderr, flush=True)
    settings = EncoderSettings(max_length=int(getattr(tokenizer, "model_max_length", 512) or 512))
    key = fingerprint(SimpleNamespace(settings=settings, backbone=model), name_or_path)
    return tokenizer, model.to(resolve_device(device)).eval(), key


def check_span_head(name: str, missing_keys: list[str]) -> None:
    """Refuse a model whose span-prediction head is not in its checkpoint (transformers would start
    it from random weights and every alignment would be noise)."""
    untrained = sorted(k for k in missing_keys if k.startswith("qa_outputs."))
    if untrained:
        raise ModelError(
            f"model '{name}' has no trained span-prediction head ({untrained[0]} is not in its checkpoint), "
            "so its word alignments would be random",
            hint=f"use a WSPAlign checkpoint such as {DEFAULT_MODEL}, or --aligner embed",
        )


# ----------------------------------------------------------------------------- the aligner


class WSPAligner:
    """Aligns sentence pairs with a span-prediction (question-answering) model, both directions."""

    name = "wspalign"

    def __init__(self, tokenizer, model, *, batch_size: int = 64, max_length: int | None = None,
                 max_span: int = MAX_SPAN):
        limit = getattr(model.config, "max_position_embeddings", 512)
        if getattr(model.config, "model_type", "") in ("xlm-roberta", "roberta", "camembert"):
            limit -= 2
        self.tokenizer, self.model = tokenizer, model
        self.max_length = min(max_length or 512, limit, int(getattr(tokenizer, "model_max_length", limit) or limit))
        self.batch_size, self.max_span = batch_size, max_span
        marks = len(tokenizer.tokenize(f" {MARK} "))
        self.budget = self.max_length - tokenizer.num_special_tokens_to_add(pair=True) - 2 * marks - 2
        if self.budget < 8:
            raise UsageError(f"--max-length {self.max_length} leaves no room for a question and its context",
                             hint="use at least 24")
        self.truncated = 0

    def options(self) -> dict:
        return {"max_length": self.max_length, "max_span": self.max_span, "mark": MARK}

    def align(self, pairs: list[tuple[str, str]], spans: list[tuple[list, list]], advance=lambda n: None) -> list:
        spans = self._fit(pairs, spans)
        queries = []  # (pair index, direction, asked word, question, context, context spans)
        for p, ((src, tgt), (s_spans, t_spans)) in enumerate(zip(pairs, spans)):
            for direction, (q_text, q_spans, c_text, c_spans) in enumerate(
                    ((src, s_spans, tgt, t_spans), (tgt, t_spans, src, s_spans))):
                cut = q_text[:q_spans[-1][1]] if q_spans else ""
                context = c_text[:c_spans[-1][1]] if c_spans else ""
                if context:
                    queries += [(p, direction, w, question(cut, span), context, c_spans)
                                for w, span in enumerate(q_spans)]
        found = [({}, {}) for _ in pairs]
        for p, direction, asked, linked, score in self._answers(queries, len(pairs), advance):
            for w in linked:
                key = (asked, w) if direction == 0 else (w, asked)
                found[p][direction][key] = score / len(linked)
        return [combine(forward, backward) for forward, backward in found]

    def _fit(self, pairs, spans) -> list[tuple[list, list]]:
        """Keep the leading words of each side that fit the model's input together (longer side
        cut first); each cut sentence is counted."""
        sentences = [side for pair in pairs for side in pair]
        enc = self.tokenizer(sentences, add_special_tokens=False, return_offsets_mapping=True)
        out = []
        for p, (s_spans, t_spans) in enumerate(spans):
            counts = [_tokens_per_word(enc["offset_mapping"][2 * p + k], side)
                      for k, side in enumerate((s_spans, t_spans))]
            a, b = sum(counts[0]), sum(counts[1])
            if a + b <= self.budget:
                out.append((s_spans, t_spans))
                continue
            half = self.budget // 2
            if b <= half:
                caps = (self.budget - b, b)
            else:
                caps = (a, self.budget - a) if a <= half else (half, self.budget - half)
            kept = [side[:words_that_fit(c, cap)] for side, c, cap in zip((s_spans, t_spans), counts, caps)]
            self.truncated += sum(len(k) < len(side) for k, side in zip(kept, (s_spans, t_spans)))
            out.append((kept[0], kept[1]))
        return out

    def _answers(self, queries, n_pairs: int, advance):
        """Yield (pair, direction, asked word, linked words, span score) for spans holding whole words."""
        if not queries:
            advance(n_pairs)
            return
        enc = self.tokenizer([q[3] for q in queries], [q[4] for q in queries], truncation=True,
                             max_length=self.max_length, return_offsets_mapping=True)
        order = sorted(range(len(queries)), key=lambda k: -len(enc["input_ids"][k]))
        names = [n for n in self.tokenizer.model_input_names if n in enc]
        device = next(self.model.parameters()).device
        with torch.inference_mode(), inference_autocast(device):
            for start in range(0, len(order), self.batch_size):
                chosen = order[start:start + self.batch_size]
                batch = self.tokenizer.pad({n: [enc[n][k] for k in chosen] for n in names}, return_tensors="pt")
                context = _context_mask([enc.sequence_ids(k) for k in chosen], batch["input_ids"].shape[1])
                logits = self.model(**batch.to(device))
                found = best_spans(logits.start_logits, logits.end_logits, context.to(device), self.max_span)
                starts, ends, scores = (t.tolist() for t in found)  # one copy per batch, not one per row
                for row, k in enumerate(chosen):
                    p, direction, asked, _, _, c_spans = queries[k]
                    offsets = enc["offset_mapping"][k]
                    linked = words_inside((offsets[starts[row]][0], offsets[ends[row]][1]), c_spans)
                    if linked:
                        yield p, direction, asked, linked, float(scores[row])
                advance(len(chosen) * n_pairs / len(queries))


def _tokens_per_word(offsets, spans) -> list[int]:
    counts = [0] * len(spans)
    for words in token_words(offsets, spans):
        if words:
            counts[words[0]] += 1
    return counts


def _context_mask(sequence_ids: list[list], length: int) -> torch.Tensor:
    rows = [[seq == 1 for seq in ids] + [False] * (length - len(ids)) for ids in sequence_ids]
    return torch.tensor(rows, dtype=torch.bool).reshape(len(sequence_ids), length)
