"""What a training run reads: the training files, their dev split, word pairs, tokenised examples.

A dev split never shares a sentence (either side) with the training split: lines whose source or
target also occurs in the dev split are left out of training.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import EncodedPair, EncodedRow, Example, encode_examples, encode_rows
from .errors import UsageError
from .io import MultiwayText, ParallelText, as_multiway, is_multiway, read_multiway, read_parallel, usable
from .model import SentenceEncoder
from .recipe import Recipe

TRAIN_ON = "nothing to train on"


# ----------------------------------------------------------------------------- data


@dataclass
class DevSet:
    name: str
    src_lang: str
    tgt_lang: str
    pairs: list[tuple[str, str]]


@dataclass
class TrainingData:
    texts: list[ParallelText] | list[MultiwayText]  # multi-way: every file as rows over its languages
    train_rows: list[list[int]]  # per text, the line indices used for training
    dev: list[DevSet]
    multiway: bool = False

    @property
    def languages(self) -> list[str]:
        return sorted({lang for t in self.texts for lang in t.langs} | {d.src_lang for d in self.dev}
                      | {d.tgt_lang for d in self.dev})


def data_files(recipe: Recipe, files: list[str] | None) -> list[str]:
    if files:
        return files
    if not recipe.data:
        raise UsageError("no training data", hint="pass files like en-jv.tsv, or use a recipe with data and languages")
    if "{lang}" in recipe.data and not recipe.languages:
        raise UsageError(f"recipe data pattern '{recipe.data}' needs languages", hint="--set languages=jv,kk")
    return [recipe.data.format(lang=lang) for lang in recipe.languages] if "{lang}" in recipe.data else [recipe.data]


def dev_split(n: int, dev_size: int, seed: int) -> tuple[list[int], list[int]]:
    """A fixed random split of n kept lines: (train indices, dev indices); dev is at most 20%, and
    none at all rather than a single pair (retrieving among one sentence always scores 1)."""
    size = min(dev_size, n // 5)
    size = size if size >= 2 else 0
    order = np.random.default_rng(seed).permutation(n)
    return sorted(order[size:].tolist()), sorted(order[:size].tolist())


def load_training_data(recipe: Recipe, files: list[str] | None, on_bad_line: str = "error", *,
                       langs: str | None = None, src_tgt: tuple[str, str] | None = None) -> TrainingData:
    """``langs`` (``"en,kk"``) names the languages of files whose names do not; ``src_tgt``: two
    line-parallel files read as one more text."""
    paths = data_files(recipe, files) if files or not src_tgt else []
    if any(is_multiway(path) for path in paths):
        if src_tgt:
            raise UsageError("--src and --tgt cannot be mixed with multi-way files", hint="join them into one file")
        return load_multiway_data(recipe, paths, on_bad_line)
    texts = [usable(read_parallel(path, langs=langs, on_bad_line=on_bad_line), why=TRAIN_ON) for path in paths]
    if src_tgt:
        texts.append(usable(read_parallel(src=src_tgt[0], tgt=src_tgt[1], langs=langs, on_bad_line=on_bad_line),
                            why=TRAIN_ON))
    if recipe.dev_data:
        dev_texts = [usable(read_parallel(recipe.dev_data.format(lang=t.tgt_lang), langs=",".join(t.langs),
                                          on_bad_line=on_bad_line), 2, "a dev set needs at least 2 pairs") for t in texts]
        dev = [DevSet(d.pair_name, d.src_lang, d.tgt_lang, [d.pairs[i] for i in d.kept()]) for d in dev_texts]
        held_out = {sentence for d in dev for pair in d.pairs for sentence in pair}
        return enough(TrainingData(texts, [without_sentences(t.kept(), t.pairs, held_out) for t in texts], dev))
    rows, dev = [], []
    for text in texts:
        train_rows, dev_rows = split_kept(text, recipe)
        rows.append(train_rows)
        if dev_rows:
            dev.append(DevSet(text.pair_name, text.src_lang, text.tgt_lang, [text.pairs[i] for i in dev_rows]))
    return enough(TrainingData(texts, rows, dev))


def enough(data: TrainingData) -> TrainingData:
    """``data``, if it holds the two training examples that in-batch negatives need at the least."""
    count = sum(len(rows) for rows in data.train_rows)
    if count < 2:
        names = ", ".join(text.name for text in data.texts)
        raise UsageError(f"{count} training pair(s) in {names} after the dev split; in-batch negatives need at least 2",
                         hint="pass more parallel text")
    return data


def split_kept(text: ParallelText | MultiwayText, recipe: Recipe) -> tuple[list[int], list[int]]:
    """(training line indices, dev line indices) among the lines of ``text`` that were kept; a
    training line that shares a sentence (on any side) with the dev lines is left out."""
    kept = text.kept()
    train_idx, dev_idx = dev_split(len(kept), recipe.dev_size, recipe.seed)
    dev = [kept[i] for i in dev_idx]
    return without_sentences([kept[i] for i in train_idx], _cells(text), _sentences(_cells(text), dev)), dev


def _cells(text: ParallelText | MultiwayText) -> list:
    return text.rows if isinstance(text, MultiwayText) else text.pairs


def _sentences(cells: list, rows: list[int]) -> set[str]:
    return {cell for i in rows for cell in cells[i] if cell is not None}


def without_sentences(rows: list[int], cells: list, sentences: set[str]) -> list[int]:
    """``rows`` less those with a cell in ``sentences``."""
    return [i for i in rows if not any(cell in sentences for cell in cells[i] if cell is not None)]


def build_examples(data: TrainingData, alignments: list[list | None]) -> list[Example]:
    examples = []
    for text, rows, links in zip(data.texts, data.train_rows, alignments):
        for i in rows:
            src, tgt = text.pairs[i]
            pairs = [(a, b) for a, b, *_ in (links[i] or [])] if links is not None else []
            examples.append(Example(src, tgt, text.src_lang, text.tgt_lang, pairs))
    return examples


def align_texts(data: TrainingData, recipe: Recipe, encoder: SentenceEncoder, progress: bool) -> list[list | None]:
    """Word pairs for every text (None per text when no word-level loss is on)."""
    if not (recipe.losses.awp or recipe.losses.wtr):
        return [None] * len(data.texts)
    from .align import alignments_for

    settings = recipe.align
    if settings.aligner == "file":
        if not settings.files:
            raise UsageError("align.aligner = \"file\" needs align.files", hint="--set align.files=data/en-{lang}.align")
        return [read_alignment_file(settings.files.format(lang=t.tgt_lang), t, encoder.tokenizer) for t in data.texts]
    model = settings.model or (encoder if settings.aligner == "embed" else "")
    return [
        alignments_for(t, aligner=settings.aligner, model=model, threshold=settings.threshold, layer=settings.layer,
                       device=str(encoder.device), progress=progress,
                       **({"prior": settings.prior} if settings.aligner == "embed" else {}))
        for t in data.texts
    ]


def read_alignment_file(path: str, text: ParallelText, tokenizer=None) -> list:
    """A user's Pharaoh file, checked against the words of ``text`` line by line (words as training
    cuts them: at spaces, or by ``tokenizer`` for languages written without spaces)."""
    from .align import links_from_file, word_spans, words_mode_for

    modes = [words_mode_for(lang) for lang in text.langs]
    counts = [None if p is None else tuple(len(word_spans(side, mode, tokenizer)) for side, mode in zip(p, modes))
              for p in text.pairs]
    return links_from_file(path, counts)


# ----------------------------------------------------------------------------- multi-way data


def load_multiway_data(recipe: Recipe, paths: list[str], on_bad_line: str) -> TrainingData:
    """Multi-way mode, chosen when any file has a ``#langs`` header: every file becomes rows over its
    languages (a two-language file, two-column rows); dev P@1 is reported per language pair."""
    check_multiway_losses(recipe)
    texts = [_read_rows(path, on_bad_line) for path in paths]
    if recipe.dev_data:
        if "{lang}" in recipe.dev_data:
            raise UsageError(f"dev_data '{recipe.dev_data}' is a pattern, but multi-way training takes one dev file",
                             hint="set dev_data to a multi-way file, or leave it empty for a dev split")
        dev = _read_rows(recipe.dev_data, on_bad_line).language_pairs()
        held_out = {sentence for d in dev for pair in d.pairs for sentence in pair}
        return enough(TrainingData(texts, [without_sentences(t.kept(), t.rows, held_out) for t in texts],
                                   _dev_sets(dev), multiway=True))
    rows, dev = [], []
    for text in texts:
        train_rows, dev_rows = split_kept(text, recipe)
        rows.append(train_rows)
        dev += text.language_pairs(dev_rows)
    return enough(TrainingData(texts, rows, _dev_sets(dev), multiway=True))


def check_multiway_losses(recipe: Recipe) -> None:
    """Multi-way rows train with TR between every pair of languages only: AWP and WTR need the word
    pairs of one sentence pair, RTL a decoder per translation direction; rather than pick some
    pairs of each row for them, wacse asks for their weights to be 0."""
    on = [f"losses.{name}" for name in ("awp", "wtr", "rtl") if getattr(recipe.losses, name)]
    if on:
        raise UsageError(f"multi-way data trains with TR between every pair of languages only, but {', '.join(on)} "
                         f"{'is' if len(on) == 1 else 'are'} not 0", hint=" ".join(f"--set {k}=0" for k in on))


def _read_rows(path: str, on_bad_line: str) -> MultiwayText:
    if is_multiway(path):
        return usable(read_multiway(path, on_bad_line), why=TRAIN_ON)
    return as_multiway(usable(read_parallel(path, on_bad_line=on_bad_line), why=TRAIN_ON))


def _dev_sets(texts: list[ParallelText]) -> list[DevSet]:
    """One dev set per language pair; the same pair from several files is joined."""
    merged: dict[str, DevSet] = {}
    for t in texts:
        merged.setdefault(t.pair_name, DevSet(t.pair_name, t.src_lang, t.tgt_lang, [])).pairs.extend(t.pairs)
    return list(merged.values())


def build_rows(data: TrainingData) -> tuple[list[str], list[list[str | None]]]:
    """The training rows of every file over one column per language (``data.languages``)."""
    columns, out = data.languages, []
    for text, rows in zip(data.texts, data.train_rows):
        place = [columns.index(lang) for lang in text.langs]
        for i in rows:
            row: list[str | None] = [None] * len(columns)
            for column, cell in zip(place, text.rows[i]):
                row[column] = cell
            out.append(row)
    return columns, out


def encode_training_data(data: TrainingData, recipe: Recipe, encoder: SentenceEncoder,
                         progress: bool) -> list[EncodedPair] | list[EncodedRow]:
    """Tokenised training examples: sentence pairs with their word pairs, or multi-way rows."""
    settings = (encoder.tokenizer, encoder.settings.prefix, min(recipe.max_length, encoder.model_max_length),
                encoder.settings.languages)
    if data.multiway:
        columns, rows = build_rows(data)
        return encode_rows(rows, columns, *settings)
    return encode_examples(build_examples(data, align_texts(data, recipe, encoder, progress)), *settings)
