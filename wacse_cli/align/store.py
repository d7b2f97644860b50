"""Alignment files: Pharaoh and JSONL output, reading links back, and the progress journal that
makes long runs resumable and doubles as the alignment cache.

A link is ``(source_word, target_word, score)`` with 0-based word indices. Pharaoh lines hold
space-separated ``i-j`` pairs sorted by source then target index; an empty line stands for a
skipped input line (or a line with no link kept), so output line i always matches input line i.

The journal is a JSONL file: a header naming the run (the cache key, chunk size, batch size and
line count), then one record per finished chunk of input lines. A run killed half-way leaves the
finished chunks there; the same command run again reads them and does only the rest. Chunks are
fixed runs of input lines and each is processed the same way whether or not the run was
interrupted, so a resumed run produces the same bytes as an uninterrupted one. A complete journal
is moved into the cache, where ``wacse train`` finds it.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, UsageError, where
from ..io import iter_lines

Links = list[tuple[int, int, float]]
FORMATS = ("pharaoh", "jsonl")
_LINK = re.compile(r"^(\d+)([-p])(\d+)$")


# ----------------------------------------------------------------------------- writing


def pharaoh_line(links: Links | None) -> str:
    """``0-0 1-2 2-1``: sorted by source index, then target index; empty for None."""
    return " ".join(f"{i}-{j}" for i, j in sorted({(i, j) for i, j, _ in links or []}))


def jsonl_line(number: int, pair: tuple[str, str] | None, spans: tuple[list, list] | None, links: Links | None) -> str:
    """One JSON object: the line number, both sides' words and every kept link with its score."""
    if pair is None or links is None:
        return json.dumps({"line": number, "skipped": True})
    src_words = [pair[0][a:b] for a, b in spans[0]]
    tgt_words = [pair[1][a:b] for a, b in spans[1]]
    kept = [[i, j, round(s, 6)] for i, j, s in sorted(links)]
    return json.dumps({"line": number, "src_words": src_words, "tgt_words": tgt_words, "links": kept},
                      ensure_ascii=False)


def check_format(value: str) -> str:
    if value not in FORMATS:
        raise UsageError(f"--format must be pharaoh or jsonl, not '{value}'")
    return value


# ----------------------------------------------------------------------------- reading


def parse_links(text: str, path: str, line: int, one_index: bool = False) -> tuple[set, set]:
    """``0-1 2p3`` -> (sure, possible) sets of (i, j); ``p`` marks a possible link."""
    sure, possible = set(), set()
    for item in text.split():
        match = _LINK.match(item)
        if not match:
            raise InputError(f"'{item}' is not a link like 3-4 or 3p4", where=where(path, line),
                             hint="write space-separated i-j pairs")
        i, j = int(match.group(1)) - one_index, int(match.group(3)) - one_index
        if i < 0 or j < 0:
            raise InputError(f"'{item}' has index 0 but --gold-one-index says indices start at 1",
                             where=where(path, line), hint="leave out --gold-one-index")
        (possible if match.group(2) == "p" else sure).add((i, j))
    return sure, possible


@dataclass
class LinkRow:
    """The links of one line; ``words`` is (source words, target words) where the line gives the
    sentences (``src<TAB>tgt<TAB>links`` lines, JSONL with words), else None."""

    sure: set
    possible: set
    words: tuple[int, int] | None = None


def read_links(path: str, *, one_index: bool = False) -> list[tuple[set, set]]:
    """(sure, possible) per line of a Pharaoh file, of ``src<TAB>tgt<TAB>links`` lines (the third
    column), or of ``wacse align --format jsonl`` output."""
    return [(row.sure, row.possible) for row in read_link_rows(path, one_index=one_index)]


def read_link_rows(path: str, *, one_index: bool = False) -> list[LinkRow]:
    """:func:`read_links` with each line's sentence lengths where known, every link checked against them."""
    out = []
    for number, text, problem in iter_lines(path):
        if problem:
            raise InputError(problem, where=where(path, number), hint="fix the line")
        row = _links_of_line(text, path, number, one_index)
        check_within(row, row.words, where(path, number))
        out.append(row)
    return out


def check_within(row: LinkRow, words: tuple[int, int] | None, place: str, whose: str = "") -> None:
    """Every link of ``row`` inside sentences of ``words`` (source, target) words, when known."""
    if words is None:
        return
    bad = sorted((i, j) for i, j in row.sure | row.possible if i >= words[0] or j >= words[1])
    if bad:
        raise InputError(f"link {bad[0][0]}-{bad[0][1]} is past the end of {whose or 'its'} sentences "
                         f"({words[0]} source and {words[1]} target words)", where=place,
                         hint="links index the words of each side from 0")


def _links_of_line(text: str, path: str, number: int, one_index: bool) -> LinkRow:
    if text.startswith("{"):
        return _json_links(text, where(path, number))
    if "\t" in text:
        columns = text.split("\t")
        if len(columns) != 3:
            raise InputError(f"expected src<TAB>tgt<TAB>links, found {len(columns)} columns",
                             where=where(path, number), hint="put the links in the third column")
        sure, possible = parse_links(columns[2], path, number, one_index)
        return LinkRow(sure, possible, (len(columns[0].split()), len(columns[1].split())))
    return LinkRow(*parse_links(text, path, number, one_index))


def _json_links(text: str, place: str) -> LinkRow:
    """A line of ``wacse align --format jsonl``: links [i, j, score] and, unless skipped, both sides' words."""
    try:
        record = json.loads(text)
    except ValueError:
        raise InputError("not valid JSON", where=place, hint="fix the line") from None
    if not isinstance(record, dict):
        raise InputError("expected a JSON object", where=place, hint="write one object per line, as wacse align does")
    if record.get("skipped") is True:
        return LinkRow(set(), set())
    links = record.get("links", [])
    if not isinstance(links, list) or not all(_is_link(link) for link in links):
        raise InputError("'links' must be a list of [source_word, target_word, score] with word indices from 0",
                         where=place, hint="write links as wacse align --format jsonl does")
    words = [record.get(side) for side in ("src_words", "tgt_words")]
    known = all(isinstance(w, list) for w in words)
    if not known and any(w is not None for w in words):
        raise InputError("'src_words' and 'tgt_words' must both be lists of words", where=place,
                         hint="write them as wacse align --format jsonl does")
    return LinkRow({(link[0], link[1]) for link in links}, set(), (len(words[0]), len(words[1])) if known else None)


def _is_link(link) -> bool:
    """``[i, j]`` or ``[i, j, score]``: word indices from 0 and a numeric score."""
    if not isinstance(link, list) or len(link) not in (2, 3):
        return False
    if len(link) == 3 and (isinstance(link[2], bool) or not isinstance(link[2], (int, float))):
        return False
    return all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in link[:2])


def check_link_files(predicted: list[LinkRow], gold: list[LinkRow], pred_path: str, gold_path: str) -> None:
    """Line i of both files is one sentence pair: the same length, and each file's links inside the
    sentences that the other gives (where only one of them knows the words)."""
    if not gold:
        raise InputError("the file has no lines", where=gold_path, hint="pass the gold alignments")
    if len(predicted) != len(gold):
        raise InputError(f"has {len(predicted)} lines but {gold_path} has {len(gold)}", where=pred_path,
                         hint="line i of both files must be the same sentence pair")
    for number, (pred, ref) in enumerate(zip(predicted, gold), start=1):
        if pred.words and ref.words and pred.words != ref.words:
            raise InputError(f"{pred.words[0]} source and {pred.words[1]} target words, but line {number} of "
                             f"{gold_path} has {ref.words[0]} and {ref.words[1]}", where=where(pred_path, number),
                             hint="align the same words as the gold (--pretokenized, --words whitespace)")
        check_within(pred, ref.words, where(pred_path, number), f"{gold_path}'s")
        check_within(ref, pred.words, where(gold_path, number), f"{pred_path}'s")
    if not any(row.sure for row in gold):
        raise InputError("no sure link on any line, so recall and AER are undefined", where=gold_path,
                         hint="pass gold alignments with i-j links")


def links_from_file(path: str, word_counts: list[tuple[int, int] | None]) -> list[Links | None]:
    """A user's ``.align`` file as links with score 1.0, checked against the parallel text:
    ``word_counts`` holds each input line's (source words, target words), None where the line was
    skipped (its links are None too). The file must have one line per input line and only
    indices within the sentences."""
    rows = read_links(path)
    if len(rows) != len(word_counts):
        raise InputError(f"has {len(rows)} lines but the parallel text has {len(word_counts)}", where=path,
                         hint="pass the .align file made from this parallel text")
    out: list[Links | None] = []
    for number, ((sure, possible), counts) in enumerate(zip(rows, word_counts), start=1):
        if counts is None:
            out.append(None)
            continue
        pairs = sorted(sure | possible)
        bad = [(i, j) for i, j in pairs if i >= counts[0] or j >= counts[1]]
        if bad:
            raise InputError(f"link {bad[0][0]}-{bad[0][1]} is past the end of a sentence "
                             f"({counts[0]} source and {counts[1]} target words)", where=where(path, number),
                             hint="links index the words of each side from 0")
        out.append([(i, j, 1.0) for i, j in pairs])
    return out


# ----------------------------------------------------------------------------- the journal


class Journal:
    """Finished chunks of one alignment run, appended to a file as they finish."""

    def __init__(self, path: Path, header: dict):
        self.path = Path(path)
        self.header = header
        self.chunks: dict[int, list] = {}
        self.resumed = False

    def load(self) -> "Journal":
        """Read finished chunks if the file belongs to this very run; otherwise start afresh."""
        records, good_bytes = _read_records(self.path)
        if records and records[0] == self.header:
            self.chunks = {r["chunk"]: r["links"] for r in records[1:] if "chunk" in r}
            self.resumed = bool(self.chunks)
            if good_bytes < self.path.stat().st_size:
                os.truncate(self.path, good_bytes)  # drop a record cut off by the interruption
        else:
            _write_new(self.path, self.header)
        return self

    @property
    def complete(self) -> bool:
        return len(self.chunks) == self.header["chunks"]

    def append(self, index: int, links: list[Links | None]) -> None:
        rows = [None if line is None else [list(link) for link in line] for line in links]
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"chunk": index, "links": rows}, separators=(",", ":")) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.chunks[index] = rows

    def links(self) -> list[Links | None]:
        out: list[Links | None] = []
        for index in range(self.header["chunks"]):
            out.extend(None if line is None else [tuple(link) for link in line] for line in self.chunks[index])
        return out


def _read_records(path: Path) -> tuple[list[dict], int]:
    """The records of a journal and the byte length of its whole lines (a torn last line is left out)."""
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    records, good = [], 0
    for raw in data.split(b"\n")[:-1]:
        try:
            records.append(json.loads(raw))
        except ValueError:
            break
        good += len(raw) + 1
    return records, good


def _write_new(path: Path, header: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(header, sort_keys=True) + "\n")


def read_cached(path: Path, header: dict) -> list[Links | None] | None:
    """Links from a complete cache entry written with this header (chunking aside), else None."""
    records, _ = _read_records(path)
    if not records or records[0].get("key") != header["key"] or records[0].get("lines") != header["lines"]:
        return None
    journal = Journal(path, records[0])
    journal.chunks = {r["chunk"]: r["links"] for r in records[1:] if "chunk" in r}
    return journal.links() if journal.complete else None
