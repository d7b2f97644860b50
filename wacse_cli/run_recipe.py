"""The recipe as a run used it, written to ``recipe.toml`` in the output folder.

The template's ``languages``, ``data`` and ``dev_size`` are replaced by what the run read: the
languages of its files, the files (as a ``{lang}`` pattern where they share one) and the dev split
it really took (``dev_size`` is capped at a fifth of each file's lines).
"""
from __future__ import annotations

import dataclasses
import re

from .recipe import Recipe, to_toml
from .training_data import TrainingData, dev_split


def effective_dev_size(recipe: Recipe, data: TrainingData) -> int:
    """The largest dev split taken from one file; the same recipe with it takes the same splits."""
    if recipe.dev_data:
        return recipe.dev_size
    sizes = [len(dev_split(len(text.kept()), recipe.dev_size, recipe.seed)[1]) for text in data.texts]
    return max(sizes, default=recipe.dev_size)


def data_pattern(names: list[str], langs: list[str]) -> str | None:
    """``data/en-{lang}.tsv`` when every file is that pattern with its own language put in, else None."""
    patterns = set()
    for name, lang in zip(names, langs):
        matches = list(re.finditer(rf"(?<![A-Za-z]){re.escape(lang)}(?![A-Za-z])", name))
        if not matches or "{" in name or "}" in name:
            return None
        last = matches[-1]
        patterns.add(name[:last.start()] + "{lang}" + name[last.end():])
    return patterns.pop() if len(patterns) == 1 else None


def recipe_as_run(recipe: Recipe, data: TrainingData, pair_files: bool = False) -> str:
    """The TOML of ``recipe`` with the languages, data and dev size this run used (``pair_files``:
    one text came from --src and --tgt, which no data pattern can name)."""
    names = [text.name for text in data.texts]
    if data.multiway:
        languages = data.languages
        pattern = names[0] if len(names) == 1 else None
    else:
        languages = [text.tgt_lang for text in data.texts]
        pattern = names[0] if len(names) == 1 else data_pattern(names, languages)
    readable = pattern is not None and all(name != "-" for name in names) and not pair_files
    resolved = dataclasses.replace(recipe, languages=languages, data=pattern if readable else "",
                                   dev_size=effective_dev_size(recipe, data))
    header = ["# The recipe as this run used it: languages, data and dev_size are what the run read.\n"]
    for text, rows in zip(data.texts, data.train_rows):
        what = "standard input" if text.name == "-" else text.name
        header.append(f"# data: {what} ({' '.join(text.langs)}): {len(text.kept())} lines kept, "
                      f"{len(rows)} trained on\n")
    if not readable:
        header.append("# data is empty: the run read files that one pattern cannot name; pass them again\n")
    dev = ", ".join(f"{d.name} {len(d.pairs)}" for d in data.dev)
    header.append(f"# dev pairs: {dev or 'none'}\n")
    return "".join(header) + to_toml(resolved)

