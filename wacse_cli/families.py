"""Documented sentence-embedding settings of common model families, for models that store none.

A model folder written by wacse or sentence-transformers says how to pool and what to put before
each sentence; a bare transformers folder (or Hub repository) does not. For the families below the
model cards document it, so wacse uses that and says it guessed; otherwise cls and no prefix.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    pattern: str  # searched in the lower-cased model id, folder name or config's _name_or_path
    label: str
    pooling: str
    prefix: str = ""


FAMILIES = (
    Family(r"(^|[/_.-])(multilingual-)?e5([/_.-]|$)", "multilingual-e5 / e5 models", "mean", "query: "),
    Family(r"labse", "LaBSE", "cls"),
    Family(r"bge-m3", "BGE-M3", "cls"),
    Family(r"paraphrase-multilingual|distiluse|multilingual-mpnet|all-minilm|all-mpnet",
           "sentence-transformers multilingual models", "mean"),
    Family(r"xlm-roberta|xlmr|bert-base-multilingual|mbert", "XLM-R and mBERT as the WACSE paper pools them", "cls"),
)
FALLBACK = Family("", "wacse's default for an unknown model", "cls")


def family_of(*names: str) -> Family:
    """The first family whose pattern one of ``names`` matches; else the fallback."""
    text = [n.lower().rstrip("/") for n in names if n]
    for family in FAMILIES:
        if any(re.search(family.pattern, n) for n in text):
            return family
    return FALLBACK


def guessed_note(model: str, family: Family, fields: list[str]) -> str:
    """The stderr line saying which settings were guessed, and from what."""
    parts = {"pooling": f"{family.pooling} pooling",
             "prefix": f"prefix {family.prefix!r}" if family.prefix else "no prefix"}
    chosen = " and ".join(parts[f] for f in fields)
    options = " and ".join(f"--{f}" for f in fields)
    return (f"note: {model} stores no {' or '.join(fields)}; using {chosen} ({family.label}); "
            f"pass {options} to choose")
