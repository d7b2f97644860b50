"""Words of a sentence as character spans, and which word each model token belongs to.

Alignment links are pairs of word indices, so every aligner and the training data must cut a
sentence into the same words. Words are kept as ``(start, end)`` character spans of the original
sentence rather than as strings: a repeated word stays two words, and tokens are mapped back to
words by where they sit in the text, whatever the tokenizer did to the characters.

Modes: ``whitespace`` (the default, and ``pretokenized``, its alias for text the user already
tokenised), ``tokenizer`` for languages written without spaces (sentencepiece pieces grouped at
``▁``, except that pieces in a script without spaces are words of their own), and ``char`` (every
non-space character is a word). No per-language segmenter is needed.
"""
from __future__ import annotations

import bisect
import re

from ..errors import UsageError

MODES = ("whitespace", "pretokenized", "tokenizer", "char")
# ISO 639-1 and 639-3 codes of languages written without spaces between words
NO_SPACE_LANGS = frozenset({
    "zh", "zho", "cmn", "yue", "wuu", "ja", "jpn", "th", "tha", "lo", "lao", "km", "khm", "my", "mya",
})
# Han, kana, Thai, Lao, Myanmar and Khmer letters: a sentencepiece piece in these scripts is a word
_NO_SPACE_SCRIPT = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u19e0-\u19ff\u3040-\u30ff\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f]"
)
_NON_SPACE = re.compile(r"\S+")


def words_mode_for(lang: str | None, pretokenized: bool = False) -> str:
    """The word mode for a language: ``tokenizer`` for languages written without spaces.

    ``pretokenized`` wins: the user has already cut the text into words with spaces.
    """
    if pretokenized:
        return "pretokenized"
    return "tokenizer" if (lang or "").lower() in NO_SPACE_LANGS else "whitespace"


def unspaced_script(sentences, sample: int = 200) -> bool:
    """Whether some of the first ``sample`` sentences are written in a script without spaces
    (where words cannot be cut at spaces, so the language decides how they are cut)."""
    return any(_NO_SPACE_SCRIPT.search(s) for s in list(sentences)[:sample])


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UsageError(f"unknown word mode '{mode}'", hint=f"use one of {', '.join(MODES)}")
    return mode


def word_spans(sentence: str, mode: str = "whitespace", tokenizer=None) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the words of ``sentence``, left to right."""
    check_mode(mode)
    if mode in ("whitespace", "pretokenized"):
        return [m.span() for m in _NON_SPACE.finditer(sentence)]
    if mode == "char":
        return [(i, i + 1) for i, ch in enumerate(sentence) if not ch.isspace()]
    if tokenizer is None:
        raise UsageError("word mode 'tokenizer' needs the model's tokenizer")
    offsets = tokenizer(sentence, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return _group_pieces(sentence, offsets)


def _group_pieces(sentence: str, offsets) -> list[tuple[int, int]]:
    """Join pieces into words: a piece starts a new word after a space, or when it or the word
    so far is in a script written without spaces. Pieces that are only spaces are dropped."""
    spans: list[tuple[int, int]] = []
    for start, end in offsets:
        while start < end and sentence[start].isspace():
            start += 1  # sentencepiece offsets may include the space before a piece
        if start >= end:
            continue
        if spans and spans[-1][1] >= start and not _splits(sentence, spans[-1], (start, end)):
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        elif spans and spans[-1][1] > start:
            spans.append((spans[-1][1], end))  # pieces that overlap (a `▁` piece): keep spans disjoint
        else:
            spans.append((start, end))
    return [s for s in spans if s[0] < s[1]]


def _splits(sentence: str, word: tuple[int, int], piece: tuple[int, int]) -> bool:
    return any(_NO_SPACE_SCRIPT.search(sentence[a:b]) for a, b in (word, piece))


def token_words(offsets: list[tuple[int, int]], spans: list[tuple[int, int]], shift: int = 0) -> list[list[int]]:
    """For each token, the indices of the words its characters overlap (empty for special, prefix
    and padding tokens, whose offsets are ``(0, 0)``, and for tokens that are only a space).

    ``offsets`` are character offsets into ``prefix + sentence`` with ``shift = len(prefix)``.
    Overlap rather than equal starts, because sentencepiece offsets may include a leading space.
    """
    starts = [s for s, _ in spans]
    out: list[list[int]] = []
    for start, end in offsets:
        start, end = int(start) - shift, int(end) - shift
        if end <= 0 or start >= end:
            out.append([])
            continue
        first = max(bisect.bisect_right(starts, start) - 1, 0)
        words = []
        for w in range(first, len(spans)):
            if spans[w][0] >= end:
                break
            if max(start, spans[w][0]) < min(end, spans[w][1]):
                words.append(w)
        out.append(words)
    return out


def token_word_ids(offsets: list[tuple[int, int]], spans: list[tuple[int, int]], shift: int = 0) -> list[int]:
    """For each token, the index of the (first) word it overlaps, or -1 (special, prefix, padding)."""
    return [words[0] if words else -1 for words in token_words(offsets, spans, shift)]


def words_that_fit(token_counts: list[int], budget: int) -> int:
    """How many leading words fit into ``budget`` tokens (words past it are truncated away)."""
    used = 0
    for n, count in enumerate(token_counts):
        used += count
        if used > budget:
            return n
    return len(token_counts)
