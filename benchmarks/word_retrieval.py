#!/usr/bin/env python3
"""Does a trained encoder match words across languages on held-out pairs? WTR's own task, measured.

For each test file and its Pharaoh links (e.g. ``wacse align test.tsv --aligner embed -m ../e5-small
--prior ibm1 --threshold 0.5``), every link (x_j, y_k) asks, in both directions, whether x_j's
word vector (the mean of its last-layer subtoken states, as WTR takes it) is nearest to y_k's

- ``sentence``: among the words of y_k's own sentence (the paper's WTR negatives), and
- ``pool``: among every word of the file's other side (a word with y_k's very subtokens counts).

usage: python benchmarks/word_retrieval.py --model runs/tr test/en-kk.tsv:links/en-kk.align ...
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wacse_cli.data import Example, encode_examples, make_batch, word_vectors  # noqa: E402
from wacse_cli.model import load_encoder  # noqa: E402


def read_pairs(tsv: str, align: str, lang: str) -> list[Example]:
    lines = Path(tsv).read_text(encoding="utf-8").splitlines()
    links = Path(align).read_text(encoding="utf-8").splitlines()
    if len(lines) != len(links):
        sys.exit(f"{align}: {len(links)} lines for the {len(lines)} of {tsv}; align that very file")
    return [Example(*line.split("\t")[:2], "en", lang, [tuple(map(int, t.split("-"))) for t in link.split()])
            for line, link in zip(lines, links) if link.strip()]


def side_words(encoder, side) -> tuple[list[torch.Tensor], list[tuple], list[tuple[int, int]]]:
    """Unit word vectors of every word of a padded side, each word's subtoken ids and (row, word)."""
    vectors, exists = word_vectors(encoder.token_states(side.ids, side.mask).float(), side.words)
    vectors = F.normalize(vectors, dim=-1)
    out, keys, slots = [], [], []
    for row in range(len(side.ids)):
        for word in torch.nonzero(exists[row]).flatten().tolist():
            out.append(vectors[row, word])
            keys.append(tuple(side.ids[row][side.words[row] == word].tolist()))
            slots.append((row, word))
    return out, keys, slots


class Words:
    """Every word of one side of a test file: vectors, subtoken ids, and where each sits."""

    def __init__(self):
        self.vectors, self.keys, self.index, self.of_row = [], [], {}, {}

    def add(self, vectors, keys, slots, first_row: int) -> None:
        for vector, key, (row, word) in zip(vectors, keys, slots):
            self.index[(first_row + row, word)] = len(self.vectors)
            self.of_row.setdefault(first_row + row, []).append(len(self.vectors))
            self.vectors.append(vector)
            self.keys.append(key)


def score_file(encoder, examples: list[Example], lang: str, batch_size: int = 64) -> dict[str, list[bool]]:
    encoded = [e for e in encode_examples(examples, encoder.tokenizer, encoder.settings.prefix, 32, ["en", lang])
               if e.links]
    words, links = {"x": Words(), "y": Words()}, []
    for start in range(0, len(encoded), batch_size):
        batch = make_batch(encoded[start:start + batch_size], encoder.tokenizer.pad_token_id,
                           np.random.default_rng(0), 1)
        for name, side in (("x", batch.x), ("y", batch.y)):
            words[name].add(*side_words(encoder, side), start)
        p = batch.pairs
        links += [(start + r, j, k) for r, j, k in zip(p.rows.tolist(), p.src_word.tolist(), p.tgt_word.tolist())]
    pools = {name: torch.stack(w.vectors) for name, w in words.items()}
    hits = {"sentence": [], "pool": []}
    for row, j, k in links:
        for mine, other, word, gold in (("x", "y", j, k), ("y", "x", k, j)):
            query = pools[mine][words[mine].index[(row, word)]]
            target, own = words[other].index[(row, gold)], words[other].of_row[row]
            hits["sentence"].append(own[int((pools[other][own] @ query).argmax())] == target)
            found = int((pools[other] @ query).argmax())
            hits["pool"].append(words[other].keys[found] == words[other].keys[target])
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("files", nargs="+", help="TEST.tsv:LINKS.align, the tsv named en-<lang>.tsv")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    encoder = load_encoder(args.model).eval()
    hits = {"sentence": [], "pool": []}
    for item in args.files:
        tsv, align = item.split(":")
        lang = Path(tsv).stem.split("-")[-1]
        for name, values in score_file(encoder, read_pairs(tsv, align, lang), lang).items():
            hits[name] += values
    print(json.dumps({"model": args.model, "links_both_directions": len(hits["pool"]),
                      **{name: round(float(np.mean(v)), 4) for name, v in hits.items()}}))


if __name__ == "__main__":
    main()
