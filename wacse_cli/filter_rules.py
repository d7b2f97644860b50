"""Cheap rules that drop sentence pairs before any model runs, each with a named reason.

A pair is dropped for the first rule it breaks, in the order of :data:`REASONS`:

- ``malformed``: the line is not two columns of valid UTF-8,
- ``empty``: a side is empty or blank,
- ``too short``: a side has at most one character,
- ``copy``: the two sides are the same text, or nearly (untranslated strings),
- ``wrong script``: a side's own words (those not also in the other side, such as names and code)
  are mostly written in a script its language does not use (Unicode
  script properties via ``regex``; the language -> scripts table comes from Unicode CLDR, see
  ``language_scripts.tsv``); languages the table does not know are not checked,
- ``numbers``: both sides hold numbers and they differ (native digits read as digits),
- ``length ratio``: the length ratio, in characters and in words, is far from the corpus's own
  median (in robust standard deviations, both measures together),
- ``duplicate``: the same pair appeared on an earlier line.
"""
from __future__ import annotations

import difflib
import math
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import regex

REASONS = ("malformed", "empty", "too short", "copy", "wrong script", "numbers", "length ratio", "duplicate")
# ISO 15924 codes that name a mix of Unicode scripts
COMPOSITE_SCRIPTS = {"Jpan": ("Hira", "Kana", "Hani"), "Kore": ("Hang", "Hani"), "Hans": ("Hani",),
                     "Hant": ("Hani",), "Hanb": ("Hani", "Bopo")}
LETTER = regex.compile(r"\p{L}")
NUMBER = regex.compile(r"\p{Nd}+(?:[.,]\p{Nd}+)*")


@dataclass
class RuleSettings:
    min_chars: int = 2  # a side shorter than this is "too short"
    copy_similarity: float = 0.9  # character similarity from which two sides count as a copy
    script_share: float = 0.5  # share of a side's letters that must be in its language's scripts
    length_deviations: float = 2.5  # how far (robust SDs, char and word z averaged) a length ratio may stray


@lru_cache(maxsize=1)
def _script_table() -> dict[str, tuple[str, ...]]:
    table: dict[str, tuple[str, ...]] = {}
    for row in Path(__file__).with_name("language_scripts.tsv").read_text(encoding="utf-8").splitlines():
        if row.startswith("#"):
            continue
        lang, scripts = row.split("\t")
        table[lang] = tuple(scripts.split(","))
    return table


def language_scripts(code: str) -> tuple[str, ...] | None:
    """Unicode script codes a language is written in (``kk`` -> Cyrl, Arab), or None if unknown."""
    from .io import iso639_3, language_names

    table = _script_table()
    found = table.get(code) or table.get(iso639_3(code))
    if found is None:  # CLDR keys languages by their shortest code: try the two-letter one
        two = {three: two for two in language_names() if len(two) == 2 for three in [iso639_3(two)]}
        found = table.get(two.get(iso639_3(code), ""))
    if found is None:
        return None
    return tuple(dict.fromkeys(s for script in found for s in COMPOSITE_SCRIPTS.get(script, (script,))))


@lru_cache(maxsize=64)
def _script_pattern(scripts: tuple[str, ...]):
    return regex.compile("|".join(rf"\p{{Script_Extensions={s}}}" for s in scripts))


def script_share(text: str, scripts: tuple[str, ...]) -> float | None:
    """Share of the letters of ``text`` in one of ``scripts``; None when it has no letters."""
    letters = LETTER.findall(text)
    if not letters:
        return None
    pattern = _script_pattern(scripts)
    return sum(1 for ch in letters if pattern.match(ch)) / len(letters)


def numbers(text: str) -> Counter:
    """The numbers written in ``text``, native digits read as ASCII (``१२`` -> ``12``)."""
    return Counter("".join(str(unicodedata.digit(ch, ch)) if ch.isdigit() else ch for ch in found)
                   for found in NUMBER.findall(text))


def _own_words(text: str, other: str) -> str:
    """``text`` without the words that also occur in ``other`` (names, code, file types kept as
    they are in a translation), so that those do not count against its script."""
    shared = set(regex.findall(r"\w+", other))
    return " ".join(word for word in regex.findall(r"\w+", text) if word not in shared)


def _letters_and_digits(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def is_copy(src: str, tgt: str, similarity: float) -> bool:
    a, b = _letters_and_digits(src), _letters_and_digits(tgt)
    if a == b:
        return True
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return matcher.real_quick_ratio() >= similarity and matcher.quick_ratio() >= similarity \
        and matcher.ratio() >= similarity


LENGTH_MEASURES = (  # (length of a text, added to both lengths, least spread): short texts vary more
    (len, 10, 0.15),
    (lambda text: len(text.split()), 2, 0.25),
)


def length_z(pairs: list[tuple[str, str] | None]) -> np.ndarray:
    """Per pair, how far its target/source length ratio lies from the corpus median, in robust
    standard deviations (1.4826 x the median absolute deviation, at least a floor), averaged over
    characters and words; signed (negative: target shorter than usual). 0 for missing pairs."""
    present = [p for p in pairs if p is not None]
    z = np.zeros(len(pairs))
    if len(present) < 2:
        return z
    total = np.zeros(len(present))
    for measure, smoothing, floor in LENGTH_MEASURES:
        ratio = np.array([math.log((measure(t) + smoothing) / (measure(s) + smoothing)) for s, t in present])
        centre = np.median(ratio)
        spread = max(1.4826 * float(np.median(np.abs(ratio - centre))), floor)
        total += (ratio - centre) / spread
    z[[i for i, p in enumerate(pairs) if p is not None]] = total / len(LENGTH_MEASURES)
    return z


def pair_reason(src: str, tgt: str, scripts: tuple[tuple[str, ...] | None, tuple[str, ...] | None],
                settings: RuleSettings) -> str | None:
    """The first rule (before length ratio and duplicates, which need the whole corpus) the pair breaks."""
    if not src.strip() or not tgt.strip():
        return "empty"
    if min(len(src.strip()), len(tgt.strip())) < settings.min_chars:
        return "too short"
    if is_copy(src, tgt, settings.copy_similarity):
        return "copy"
    for text, other, expected in ((src, tgt, scripts[0]), (tgt, src, scripts[1])):
        share = script_share(_own_words(text, other), expected) if expected else None
        if share is not None and share < settings.script_share:
            return "wrong script"
    src_numbers, tgt_numbers = numbers(src), numbers(tgt)
    if src_numbers and tgt_numbers and src_numbers != tgt_numbers:
        return "numbers"
    return None


def apply_rules(pairs: list[tuple[str, str] | None], src_lang: str, tgt_lang: str,
                settings: RuleSettings | None = None) -> list[str | None]:
    """The reason each pair is dropped (None: kept); a missing pair (a bad line) is ``malformed``."""
    settings = settings or RuleSettings()
    scripts = (language_scripts(src_lang), language_scripts(tgt_lang))
    reasons: list[str | None] = ["malformed" if p is None else pair_reason(*p, scripts, settings) for p in pairs]
    z = length_z([p if r is None else None for p, r in zip(pairs, reasons)])
    seen: set[tuple[str, str]] = set()
    for i, pair in enumerate(pairs):
        if reasons[i] is None and abs(z[i]) > settings.length_deviations:
            reasons[i] = "length ratio"
        if reasons[i] is None:
            if pair in seen:
                reasons[i] = "duplicate"
            seen.add(pair)
    return reasons
