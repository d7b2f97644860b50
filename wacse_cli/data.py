"""Training batches: sentence pairs as token ids, with word-pair supervision.

Each sentence is tokenised once (with the model's prefix, truncated to the recipe's max length);
each token knows which word it belongs to. Every aligned word pair (x_j, y_k) of every sentence
pair drives AWP and WTR in both directions (the paper's Eq. 4-8).

AWP masks a word and predicts its aligned word. Masking each aligned word in its own copy of the
sentence would cost one forward pass per word; instead each sentence's aligned words are dealt at
random into at most ``mask_groups`` disjoint groups, and each group is masked in one copy (so a
batch costs ``mask_groups`` extra passes per side at most). ``mask_groups=0`` masks one word per
copy, the paper's scheme. ``awp_rows`` < 1 masks only a random share of each batch's sentences
(AWP's loss is scaled back up to the whole batch), so AWP costs that share of a side's pass.

Multi-way rows (the same sentence in several languages) become one padded side of all their present
cells, with each cell's place in the (rows, languages) grid.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch



@dataclass
class Example:
    src: str
    tgt: str
    src_lang: str
    tgt_lang: str
    links: list[tuple[int, int]] = field(default_factory=list)  # (source word, target word)


@dataclass
class Encoded:
    """A tokenised sentence: ids and, per token, its word index (-1: special, prefix, padding)."""

    ids: list[int]
    words: list[int]

    def word_tokens(self, word: int) -> list[int]:
        return [t for t, w in enumerate(self.words) if w == word]


def encode_sentence(tokenizer, text: str, prefix: str, max_length: int, lang: str, with_words: bool = True) -> Encoded:
    """Token ids of ``prefix + text``; with ``with_words``, each token's word index in ``text``."""
    enc = tokenizer(prefix + text, truncation=True, max_length=max_length, return_offsets_mapping=with_words)
    if not with_words:
        return Encoded(enc["input_ids"], [-1] * len(enc["input_ids"]))
    from .align.words import token_word_ids, word_spans, words_mode_for

    spans = word_spans(text, words_mode_for(lang), tokenizer=tokenizer)
    return Encoded(enc["input_ids"], token_word_ids(enc["offset_mapping"], spans, shift=len(prefix)))


@dataclass
class EncodedPair:
    src: Encoded
    tgt: Encoded
    src_lang: int
    tgt_lang: int
    links: list[tuple[int, int]]  # only links whose words both survived truncation


def encode_examples(examples: list[Example], tokenizer, prefix: str, max_length: int,
                    languages: list[str]) -> list[EncodedPair]:
    out = []
    for ex in examples:
        src = encode_sentence(tokenizer, ex.src, prefix, max_length, ex.src_lang, with_words=bool(ex.links))
        tgt = encode_sentence(tokenizer, ex.tgt, prefix, max_length, ex.tgt_lang, with_words=bool(ex.links))
        src_words, tgt_words = set(src.words), set(tgt.words)
        links = [(i, j) for i, j in ex.links if i in src_words and j in tgt_words]
        out.append(EncodedPair(src, tgt, _lang_index(languages, ex.src_lang), _lang_index(languages, ex.tgt_lang), links))
    return out


def _lang_index(languages: list[str], lang: str) -> int:
    return languages.index(lang) if lang in languages else 0


# ----------------------------------------------------------------------------- batches


@dataclass
class Side:
    """One side (X or Y) of a batch, padded."""

    ids: torch.Tensor  # (B, L)
    mask: torch.Tensor  # (B, L)
    words: torch.Tensor  # (B, L) word index per token, -1 elsewhere
    lang: torch.Tensor  # (B,)

    def to(self, device) -> "Side":
        return Side(*(t.to(device) for t in (self.ids, self.mask, self.words, self.lang)))

    def __len__(self) -> int:
        return len(self.ids)


def stack_sides(x: Side, y: Side, pad_id: int) -> Side:
    """X's rows then Y's, padded to the longer of the two: one forward pass for both sides."""
    length = max(x.ids.shape[1], y.ids.shape[1])

    def padded(t: torch.Tensor, value: int) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, length - t.shape[1]), value=value)

    return Side(torch.cat([padded(x.ids, pad_id), padded(y.ids, pad_id)]), torch.cat([padded(x.mask, 0), padded(y.mask, 0)]),
                torch.cat([padded(x.words, -1), padded(y.words, -1)]), torch.cat([x.lang, y.lang]))


def concat_sides(first: Side, second: Side) -> Side:
    """``first``'s rows then ``second``'s, both padded to the same length."""
    return Side(*(torch.cat([a, b]) for a, b in zip((first.ids, first.mask, first.words, first.lang),
                                                    (second.ids, second.mask, second.words, second.lang))))


@dataclass
class WordPairs:
    """Every aligned word pair of the batch: x_j in X, y_k in Y, and the AWP mask group of x_j
    (among X's aligned words) and of y_k (among Y's)."""

    rows: torch.Tensor  # (P,) example index in the batch
    src_word: torch.Tensor  # (P,) j
    tgt_word: torch.Tensor  # (P,) k
    src_group: torch.Tensor  # (P,)
    tgt_group: torch.Tensor  # (P,)

    def to(self, device) -> "WordPairs":
        return WordPairs(*(t.to(device) for t in self._fields()))

    def _fields(self) -> tuple[torch.Tensor, ...]:
        return self.rows, self.src_word, self.tgt_word, self.src_group, self.tgt_group

    def select(self, rows: slice) -> "WordPairs":
        """The pairs of examples start..stop-1, re-indexed from 0."""
        keep = (self.rows >= rows.start) & (self.rows < rows.stop)
        picked = [t[keep] for t in self._fields()]
        return WordPairs(picked[0] - rows.start, *picked[1:])


@dataclass
class Batch:
    x: Side
    y: Side
    pairs: WordPairs
    awp_scale: float = 1.0  # batch size / sentences AWP masks (word pairs of the others have group -1)

    def __len__(self) -> int:
        return len(self.x)

    def chunk(self, start: int, stop: int) -> "Batch":
        """Examples start..stop-1, trimmed to their own longest sentence."""
        return Batch(_slice_side(self.x, start, stop), _slice_side(self.y, start, stop),
                     self.pairs.select(slice(start, stop)), self.awp_scale)

    def to(self, device) -> "Batch":
        return Batch(self.x.to(device), self.y.to(device), self.pairs.to(device), self.awp_scale)


def _slice_side(side: Side, start: int, stop: int) -> Side:
    mask = side.mask[start:stop]
    length = int(mask.sum(1).max()) if len(mask) else 0
    return Side(side.ids[start:stop, :length], mask[:, :length], side.words[start:stop, :length], side.lang[start:stop])


def pad_side(encoded: list[Encoded], langs: list[int], pad_id: int) -> Side:
    """Sentences padded into one side of a batch."""
    length = max(len(e.ids) for e in encoded)
    ids = torch.full((len(encoded), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), length), dtype=torch.long)
    words = torch.full((len(encoded), length), -1, dtype=torch.long)
    for row, e in enumerate(encoded):
        ids[row, : len(e.ids)] = torch.tensor(e.ids)
        mask[row, : len(e.ids)] = 1
        words[row, : len(e.ids)] = torch.tensor(e.words)
    return Side(ids, mask, words, torch.tensor(langs, dtype=torch.long))


def make_batch(pairs: list[EncodedPair], pad_id: int, rng: np.random.Generator, mask_groups: int = 2,
               awp_rows: float = 1.0) -> Batch:
    """Pad both sides and list every aligned word pair, with each word's AWP mask group. With
    ``awp_rows`` < 1, AWP masks only that share of the sentences (drawn at random; the others'
    pairs get group -1) and ``awp_scale`` scales its loss back up to the whole batch."""
    x = pad_side([p.src for p in pairs], [p.src_lang for p in pairs], pad_id)
    y = pad_side([p.tgt for p in pairs], [p.tgt_lang for p in pairs], pad_id)
    masked = set(range(len(pairs)))
    if awp_rows < 1:
        masked = set(rng.choice(len(pairs), size=max(1, round(awp_rows * len(pairs))), replace=False).tolist())
    columns: list[list[int]] = [[], [], [], [], []]
    for row, pair in enumerate(pairs):
        if not pair.links:
            continue
        src_group = mask_group_of([j for j, _ in pair.links], mask_groups, rng)
        tgt_group = mask_group_of([k for _, k in pair.links], mask_groups, rng)
        for j, k in pair.links:
            groups = (src_group[j], tgt_group[k]) if row in masked else (-1, -1)
            for column, value in zip(columns, (row, j, k, *groups)):
                column.append(value)
    return Batch(x, y, WordPairs(*(torch.tensor(c, dtype=torch.long) for c in columns)), len(pairs) / len(masked))


def mask_group_of(words: list[int], mask_groups: int, rng: np.random.Generator) -> dict[int, int]:
    """Deal the distinct ``words`` at random into ``mask_groups`` disjoint groups (0: one each)."""
    distinct = sorted(set(words))
    order = rng.permutation(len(distinct))
    groups = mask_groups if mask_groups > 0 else len(distinct)
    return {distinct[i]: position % groups for position, i in enumerate(order)}


class BatchSampler:
    """Shuffled batches over epochs; its state is (epoch, position) so a run can resume exactly."""

    def __init__(self, size: int, batch_size: int, seed: int):
        if size < 2:
            raise ValueError("need at least two training pairs")
        self.size, self.batch_size, self.seed = size, min(batch_size, size), seed
        self.epoch, self.position = 0, 0

    def _order(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.size)

    def next(self) -> np.ndarray:
        """Indices of the next batch; an epoch's last partial batch is dropped."""
        if self.position + self.batch_size > self.size:
            self.epoch, self.position = self.epoch + 1, 0
        chosen = self._order()[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return chosen

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = state["epoch"], state["position"]


# ----------------------------------------------------------------------------- multi-way rows


@dataclass
class EncodedRow:
    """One multi-way row: a tokenised sentence per language column (None: absent), and each
    column's index in the model's language list."""

    cells: list[Encoded | None]
    langs: list[int]


def encode_rows(rows: list[list[str | None]], columns: list[str], tokenizer, prefix: str, max_length: int,
                languages: list[str]) -> list[EncodedRow]:
    """Every present cell tokenised once (without word indices: no word-level loss on these rows)."""
    lang_ids = [_lang_index(languages, lang) for lang in columns]

    def encode(text: str | None, lang: str) -> Encoded | None:
        return None if text is None else encode_sentence(tokenizer, text, prefix, max_length, lang, with_words=False)

    return [EncodedRow([encode(text, lang) for text, lang in zip(row, columns)], lang_ids) for row in rows]


@dataclass
class MultiwayBatch:
    """The present cells of N rows x L languages, row by row, as one padded side; ``row`` and
    ``column`` place each cell in the (N, L) grid."""

    cells: Side
    row: torch.Tensor  # (C,)
    column: torch.Tensor  # (C,)
    shape: tuple[int, int]  # (N, L)

    def __len__(self) -> int:
        return self.shape[0]

    def present(self) -> torch.Tensor:
        """(N, L), True where a cell exists."""
        grid = torch.zeros(self.shape, dtype=torch.bool, device=self.row.device)
        grid[self.row, self.column] = True
        return grid

    def chunk(self, start: int, stop: int) -> Side:
        """Cells start..stop-1, trimmed to their own longest sentence."""
        return _slice_side(self.cells, start, stop)

    def to(self, device) -> "MultiwayBatch":
        return MultiwayBatch(self.cells.to(device), self.row.to(device), self.column.to(device), self.shape)


def make_multiway_batch(rows: list[EncodedRow], pad_id: int) -> MultiwayBatch:
    placed = [(r, c, cell, row.langs[c]) for r, row in enumerate(rows) for c, cell in enumerate(row.cells)
              if cell is not None]
    side = pad_side([p[2] for p in placed], [p[3] for p in placed], pad_id)
    place = [torch.tensor([p[k] for p in placed], dtype=torch.long) for k in (0, 1)]
    return MultiwayBatch(side, place[0], place[1], (len(rows), len(rows[0].cells)))


# ----------------------------------------------------------------------------- word vectors


def word_vectors(states: torch.Tensor, words: torch.Tensor, n_words: int | None = None):
    """(B, W, d) mean of each word's subtoken states and a (B, W) mask of the words that exist."""
    n_words = n_words if n_words is not None else int(words.max()) + 1 if words.numel() else 0
    assign = _word_assignment(words, n_words, states.dtype)
    counts = assign.sum(1)  # (B, W)
    vectors = assign.transpose(1, 2) @ states / counts.clamp(min=1).unsqueeze(-1)
    return vectors, counts > 0


def _word_assignment(words: torch.Tensor, n_words: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, L, W): 1 where token l belongs to word w."""
    return (words.unsqueeze(-1) == torch.arange(max(n_words, 1), device=words.device)).to(dtype)


def word_keys(ids: torch.Tensor, words: torch.Tensor, n_words: int) -> torch.Tensor:
    """(B, W, 3) a key per word that two words share when they have the same subtokens:
    (count, sum of ids + 1, sum of their squares), in float64 where those sums are exact."""
    assign = _word_assignment(words, n_words, torch.float64)
    token = ids.double().unsqueeze(-1) + 1  # (B, L, 1)
    return torch.stack([assign.sum(1), (assign * token).sum(1), (assign * token ** 2).sum(1)], dim=-1)


def masked_word_inputs(side: Side, other: Side, rows: torch.Tensor, word: torch.Tensor, other_word: torch.Tensor,
                       group: torch.Tensor, mask_id: int):
    """AWP inputs for word pairs (rows[p], word[p]) -> (rows[p], other_word[p]).

    One copy of ``side``'s sentence per (row, group), with every subtoken of the group's words
    masked. The first n masked positions of word[p] predict the first n subtokens of
    other_word[p] in ``other``, n the shorter of the two words' subtoken counts.
    Returns (copy ids (C, L), copy rows (C,), positions (T, 2) as (copy, token), targets (T,),
    pair index (T,)).
    """
    span = int(group.max()) + 1 if len(group) else 1
    keys, copy_of_pair = torch.unique(rows * span + group, return_inverse=True)
    copy_rows = keys // span
    mine = side.words[rows] == word[:, None]  # (P, L)
    theirs = other.words[rows] == other_word[:, None]  # (P, L_other)
    n = torch.minimum(mine.sum(1), theirs.sum(1))[:, None]
    mine_used = mine & (mine.cumsum(1) <= n)
    theirs_used = theirs & (theirs.cumsum(1) <= n)
    masked = torch.zeros((len(keys), mine.shape[1]), dtype=torch.long, device=mine.device)
    masked.index_add_(0, copy_of_pair, mine.long())
    ids = side.ids[copy_rows].masked_fill(masked > 0, mask_id)
    pair_index, token = mine_used.nonzero(as_tuple=True)  # row-major: pair by pair, tokens in order
    other_pair, other_token = theirs_used.nonzero(as_tuple=True)
    targets = other.ids[rows[other_pair], other_token]
    positions = torch.stack([copy_of_pair[pair_index], token], dim=1)
    return ids, copy_rows, positions, targets, pair_index
