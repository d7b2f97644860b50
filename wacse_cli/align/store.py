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


def read_links(path: str, *, one_index: bool = False) -> list[tuple[set, set]]:
    """(sure, possible) per line of a Pharaoh file, of ``src<TAB>tgt<TAB>links`` lines (the third
    column), or of ``wacse align --format jsonl`` output."""
    out = []
    for number, text, problem in iter_lines(path):
        if problem:
            raise InputError(problem, where=where(path, number), hint="fix the line")
        out.append(_links_of_line(text, path, number, one_index))
    return out


def _links_of_line(text: str, path: str, number: int, one_index: bool) -> tuple[set, set]:
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError:
            raise InputError("not valid JSON", where=where(path, number), hint="fix the line") from None
        return {(int(i), int(j)) for i, j, *_ in record.get("links", [])}, set()
    if "\t" in text:
        columns = text.split("\t")
        if len(columns) != 3:
            raise InputError(f"expected src<TAB>tgt<TAB>links, found {len(columns)} columns",
                             where=where(path, number), hint="put the links in the third column")
        text = columns[2]
    return parse_links(text, path, number, one_index)


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
