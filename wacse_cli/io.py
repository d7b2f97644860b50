"""Reading and validating parallel text; writing outputs atomically.

Parallel text comes as ``src<TAB>tgt`` lines, as ``src ||| tgt`` lines, or as two line-parallel
files. Lines are split on ``\\n`` only (a trailing ``\\r`` is dropped), quotes are literal
characters, and every problem is reported as ``file:line: what; how to fix``. With
``on_bad_line="skip"`` a bad line becomes ``None`` so that output line i still matches input
line i.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Iterator

from .errors import InputError, UsageError, where
from .outputs import check_file_writable, is_special, reason

ON_BAD_LINE = ("error", "skip")
PIPES = "|||"
UNKNOWN_LANG = "und"  # ISO 639 "undetermined": where a command does not need the languages


@dataclass
class ParallelText:
    """Sentence pairs in input order; ``pairs[i]`` is None where line i+1 was skipped."""

    name: str
    src_lang: str
    tgt_lang: str
    pairs: list[tuple[str, str] | None]
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    extra: list[str | None] = field(default_factory=list)  # a third column, where allowed

    @property
    def langs(self) -> tuple[str, str]:
        return self.src_lang, self.tgt_lang

    @property
    def pair_name(self) -> str:
        return f"{self.src_lang}-{self.tgt_lang}"

    def kept(self) -> list[int]:
        """Indices of the pairs that were not skipped."""
        return [i for i, p in enumerate(self.pairs) if p is not None]


@dataclass
class Sentences:
    """One sentence per line; ``lines[i]`` is None where line i+1 was skipped."""

    name: str
    lines: list[str | None]
    skipped: list[tuple[int, str]] = field(default_factory=list)


# ----------------------------------------------------------------------------- languages


@lru_cache(maxsize=1)
def _language_table() -> tuple[dict[str, str], dict[str, str]]:
    names: dict[str, str] = {}
    three_letter: dict[str, str] = {}
    table = Path(__file__).with_name("languages.tsv").read_text(encoding="utf-8")
    for row in table.splitlines():
        if row.startswith("#"):
            continue
        three, two, name = row.split("\t")
        names[three] = name
        three_letter[three] = three
        if two:
            names[two] = name
            three_letter[two] = three
    return names, three_letter


def language_names() -> dict[str, str]:
    """ISO 639-1 and 639-3 codes mapped to English names."""
    return _language_table()[0]


def iso639_3(code: str) -> str:
    """``kk`` -> ``kaz``; three-letter codes are returned as they are."""
    return _language_table()[1].get(code, code)


def check_lang(code: str, source: str) -> str:
    code = code.strip()
    if not code:
        raise UsageError(f"missing language code in {source}", hint="use ISO 639 codes such as en,jv")
    if code.lower() not in language_names():
        raise UsageError(
            f"unknown language code '{code}' in {source}",
            hint="use an ISO 639-1 or 639-3 code such as 'jv' or 'kaz'",
        )
    return code.lower()


def parse_langs(text: str, source: str = "--langs", count: int = 2) -> list[str]:
    """``"en,jv"`` -> ``["en", "jv"]``, checking each code."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p] if text.strip() else []
    if len(parts) != count:
        raise UsageError(f"{source} needs {count} language codes, got '{text}'", hint="write it like en,jv")
    return [check_lang(p, source) for p in parts]


def langs_from_name(path: str) -> tuple[str, str] | None:
    """The language pair in a file name such as ``en-jv.tsv`` or ``train.eng-jav.tsv``."""
    found = None
    for a, b in re.findall(r"(?<![a-z])([a-z]{2,3})[-_]([a-z]{2,3})(?![a-z])", Path(path).name.lower()):
        if a in language_names() and b in language_names():
            found = (a, b)
    return found


# extensions that happen to be ISO 639-3 codes too (txt is Tektiteko, src Sardinian, tgt Tagbanwa...)
FILE_EXTENSIONS = frozenset({"txt", "tsv", "csv", "tok", "raw", "src", "tgt", "out", "dat", "xml", "bpe", "spm"})


def lang_from_extension(path: str) -> str | None:
    """The language of ``corpus.jv`` (a line-parallel file named by its extension)."""
    suffix = Path(path).suffix.lstrip(".").lower()
    return suffix if suffix in language_names() and suffix not in FILE_EXTENSIONS else None


def resolve_langs(langs: str | None, name_hint: tuple[str, str] | None, what: str,
                  need_langs: bool = True) -> tuple[str, str]:
    if langs:
        src, tgt = parse_langs(langs)
        return src, tgt
    if name_hint is None and not need_langs:
        return UNKNOWN_LANG, UNKNOWN_LANG
    if name_hint is None:
        raise UsageError(
            f"missing language codes: cannot tell the languages of {what} from its name",
            hint="name the file like en-jv.tsv or pass --langs en,jv",
        )
    return name_hint


# ----------------------------------------------------------------------------- reading lines


def read_file_bytes(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file", hint="check the path") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder, not a file", hint="pass a text file") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied", hint="check the file's permissions") from None


def iter_lines(path: str) -> Iterator[tuple[int, str | None, str | None]]:
    """Yield ``(line_number, text, problem)``; text is None when the line is not valid UTF-8."""
    data = read_file_bytes(path)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    chunks = data.split(b"\n")
    if chunks and chunks[-1] == b"":
        chunks.pop()
    offset = 0
    for number, raw in enumerate(chunks, start=1):
        yield (number, *decode_line(raw, offset))
        offset += len(raw) + 1


def decode_line(raw: bytes, offset: int) -> tuple[str | None, str | None]:
    """``(text, problem)`` for one line without its ``\\n`` (a trailing ``\\r`` is dropped);
    ``offset`` is the line's byte offset in the file, for the message about invalid UTF-8."""
    line = raw[:-1] if raw.endswith(b"\r") else raw
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"invalid UTF-8 at byte offset {offset + exc.start} of the file (byte {exc.start + 1} of the line)"
    if "\x00" in text:
        at = line.index(b"\x00")
        return None, (f"NUL byte at byte offset {offset + at} of the file (byte {at + 1} of the line): "
                      "binary data, not text")
    return text, None


def bad_line(path: str, line: int, reason: str, hint: str, on_bad_line: str, skipped: list) -> None:
    if on_bad_line == "skip":
        skipped.append((line, reason))
        return
    raise InputError(reason, where=where(path, line), hint=f"{hint}, or pass --on-bad-line skip")


def check_usable(path: str, kept: int, total: int, needed: int = 1, why: str = "") -> None:
    """An input whose lines were all (or all but a few) skipped is an error, never an empty result."""
    if kept >= needed:
        return
    if total == 0:
        raise InputError("the file has no lines", where=str(path), hint="pass a file with at least one line")
    what = f"all {total} lines were skipped" if kept == 0 else f"only {kept} of {total} lines are usable"
    need = f"; {why}" if why else ""
    raise InputError(f"{what}{need}", where=str(path), hint="fix the lines that --on-bad-line error reports")


def usable(text, needed: int = 1, why: str = ""):
    """``text`` (Sentences, ParallelText or MultiwayText) unless fewer than ``needed`` of its lines
    were kept (see :func:`check_usable`)."""
    rows = text.lines if isinstance(text, Sentences) else text.rows if isinstance(text, MultiwayText) else text.pairs
    check_usable(text.name, sum(row is not None for row in rows), len(rows), needed, why)
    return text


def check_on_bad_line(value: str) -> str:
    if value not in ON_BAD_LINE:
        raise UsageError(f"--on-bad-line must be 'error' or 'skip', not '{value}'")
    return value


def read_sentences(path: str, on_bad_line: str = "error") -> Sentences:
    """One sentence per line, for embed and search; empty lines and bad UTF-8 are bad lines."""
    check_on_bad_line(on_bad_line)
    out = Sentences(name=path, lines=[])
    for number, text, problem in iter_lines(path):
        if problem is None and not text.strip():
            problem = "empty line"
        if problem:
            bad_line(path, number, problem, "remove or fill the line", on_bad_line, out.skipped)
            out.lines.append(None)
        else:
            out.lines.append(text)
    if not out.lines:
        raise InputError("the file has no lines", where=path, hint="pass a file with one sentence per line")
    return out


def _split_pair(text: str, sep: str, columns: int) -> tuple[list[str] | None, str | None]:
    parts = text.split(sep)
    if sep == PIPES:
        parts = [p.strip() for p in parts]
    if len(parts) not in (2, columns):
        expected = "2" if columns == 2 else f"2 or {columns}"
        label = "tab-separated" if sep == "\t" else "' ||| '-separated"
        return None, f"expected {expected} {label} columns, found {len(parts)}"
    if not parts[0].strip() or not parts[1].strip():
        side = "source" if not parts[0].strip() else "target"
        return None, f"empty {side} side"
    return parts, None


def _detect_separator(path: str, first: str | None) -> str:
    if first is not None and "\t" in first:
        return "\t"
    if first is not None and PIPES in first:
        return PIPES
    raise InputError(
        "found neither a tab nor ' ||| ' between the two sentences",
        where=where(path, 1),
        hint="write 'source<TAB>target' lines, or pass --src and --tgt for two line-parallel files",
    )


def read_parallel_file(
    path: str, *, langs: str | None = None, on_bad_line: str = "error", columns: int = 2, need_langs: bool = True
) -> ParallelText:
    """Read ``src<TAB>tgt`` or ``src ||| tgt`` lines (``columns=3`` also allows a third column).
    Without ``need_langs``, languages that neither ``langs`` nor the name give are ``und``."""
    check_on_bad_line(on_bad_line)
    lines = list(iter_lines(path))  # a missing or unreadable file is the first thing to report
    src_lang, tgt_lang = resolve_langs(langs, langs_from_name(path), "standard input" if path == "-" else path,
                                       need_langs)
    if not lines:
        raise InputError("the file has no lines", where=path, hint="pass a file of sentence pairs")
    first_good = next((t for _, t, p in lines if p is None and t.strip()), None)
    sep = _detect_separator(path, first_good)
    out = ParallelText(name=path, src_lang=src_lang, tgt_lang=tgt_lang, pairs=[])
    for number, text, problem in lines:
        parts = None
        if problem is None:
            parts, problem = _split_pair(text, sep, columns)
        if problem:
            bad_line(path, number, problem, "fix the line", on_bad_line, out.skipped)
            out.pairs.append(None)
            out.extra.append(None)
            continue
        out.pairs.append((parts[0], parts[1]))
        out.extra.append(parts[2] if len(parts) > 2 else None)
    return out


def read_parallel_files(
    src: str, tgt: str, *, langs: str | None = None, on_bad_line: str = "error", need_langs: bool = True
) -> ParallelText:
    """Two line-parallel files; their line counts must match."""
    check_on_bad_line(on_bad_line)
    hint = None
    if lang_from_extension(src) and lang_from_extension(tgt):
        hint = (lang_from_extension(src), lang_from_extension(tgt))
    src_lines, tgt_lines = list(iter_lines(src)), list(iter_lines(tgt))
    src_lang, tgt_lang = resolve_langs(langs, hint, f"{src} and {tgt}", need_langs)
    if len(src_lines) != len(tgt_lines):
        longer, shorter = (src, tgt) if len(src_lines) > len(tgt_lines) else (tgt, src)
        n_long, n_short = max(len(src_lines), len(tgt_lines)), min(len(src_lines), len(tgt_lines))
        raise InputError(
            f"no matching line in {shorter} ({longer} has {n_long} lines, {shorter} has {n_short})",
            where=where(longer, n_short + 1),
            hint="the two files must be line-parallel",
        )
    out = ParallelText(name=src, src_lang=src_lang, tgt_lang=tgt_lang, pairs=[])
    for (number, s, s_problem), (_, t, t_problem) in zip(src_lines, tgt_lines):
        problem, path = (s_problem, src) if s_problem else (t_problem, tgt)
        if problem is None and not s.strip():
            problem, path = "empty source side", src
        if problem is None and not t.strip():
            problem, path = "empty target side", tgt
        if problem:
            if on_bad_line == "error":
                raise InputError(problem, where=where(path, number), hint="fix the line, or pass --on-bad-line skip")
            out.skipped.append((number, problem))
            out.pairs.append(None)
        else:
            out.pairs.append((s, t))
        out.extra.append(None)
    return out


def read_parallel(
    path: str | None = None,
    *,
    src: str | None = None,
    tgt: str | None = None,
    langs: str | None = None,
    on_bad_line: str = "error",
    columns: int = 2,
    need_langs: bool = True,
) -> ParallelText:
    """Parallel text from one file or from ``src`` and ``tgt`` line-parallel files."""
    if path is not None and (src or tgt):
        raise UsageError("pass either a file of pairs or --src and --tgt, not both")
    if path is not None:
        return read_parallel_file(path, langs=langs, on_bad_line=on_bad_line, columns=columns, need_langs=need_langs)
    check_src_tgt(src, tgt)
    if not (src and tgt):
        raise UsageError("no parallel text given", hint="pass a file like en-jv.tsv, or --src a.en --tgt a.jv")
    return read_parallel_files(src, tgt, langs=langs, on_bad_line=on_bad_line, need_langs=need_langs)


def check_src_tgt(src: str | None, tgt: str | None) -> None:
    if bool(src) != bool(tgt):
        given, missing = ("--src", "--tgt") if src else ("--tgt", "--src")
        raise UsageError(f"{given} needs {missing} too", hint="pass both line-parallel files: --src a.en --tgt a.jv")


# ----------------------------------------------------------------------------- writing


@contextlib.contextmanager
def atomic_output(path: str, mode: str = "w") -> Iterator[IO]:
    """Write to a temporary file beside ``path`` and rename it into place on success.

    ``path == "-"`` writes to standard output. On any exception the temporary file is removed,
    so an interrupted or failed command leaves nothing half-written behind.
    """
    if path == "-":
        yield sys.stdout.buffer if "b" in mode else sys.stdout
        return
    target = Path(path)
    check_file_writable(path)
    encoding, newline = (None, None) if "b" in mode else ("utf-8", "\n")
    if is_special(path):  # /dev/null, a pipe: nothing to replace, nothing half-written to remove
        with open(path, mode, encoding=encoding, newline=newline) as handle:
            yield handle
        return
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:  # the folder changed since the command checked it
        raise UsageError(f"{path}: cannot write in {target.parent} ({reason(exc)})") from None
    try:
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def text_sha256(lines: list[str | None]) -> str:
    digest = hashlib.sha256()
    for line in lines:
        digest.update(b"\x00" if line is None else line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


# ----------------------------------------------------------------------------- evaluation inputs


def read_id_sentences(path: str, on_bad_line: str = "error") -> tuple[list[str], list[str]]:
    """BUCC's ``id<TAB>sentence`` files: (ids, sentences); ids must be unique."""
    check_on_bad_line(on_bad_line)
    ids, sentences, seen, skipped = [], [], set(), []
    number = 0
    for number, text, problem in iter_lines(path):
        parts = text.split("\t") if problem is None else []
        if problem is None and (len(parts) != 2 or not parts[0].strip() or not parts[1].strip()):
            problem = f"expected 'id<TAB>sentence', found {len(parts)} column(s)" if len(parts) != 2 else "empty id or sentence"
        if problem is None and parts[0] in seen:
            problem = f"id '{parts[0]}' appears twice"
        if problem:
            bad_line(path, number, problem, "fix the line", on_bad_line, skipped)
            continue
        seen.add(parts[0])
        ids.append(parts[0])
        sentences.append(parts[1])
    check_usable(path, len(ids), number, why="nothing to mine")
    return ids, sentences


def read_gold_pairs(path: str, source_ids: set[str] | None = None, target_ids: set[str] | None = None,
                    on_bad_line: str = "error") -> set[tuple[str, str]]:
    """BUCC gold: ``src_id<TAB>tgt_id`` lines, each id one of ``source_ids`` / ``target_ids`` when given
    (with ``on_bad_line="skip"``, pairs naming an unknown or skipped id are left out)."""
    gold, skipped, number = set(), [], 0
    for number, text, problem in iter_lines(path):
        parts = [p.strip() for p in text.split("\t")] if problem is None else []
        if problem is None and len(parts) != 2:
            problem = f"expected 'source_id<TAB>target_id', found {len(parts)} column(s)"
        if problem is None:
            problem = _unknown_id(parts, source_ids, target_ids)
        if problem:
            bad_line(path, number, problem, "fix the line", on_bad_line, skipped)
            continue
        gold.add((parts[0], parts[1]))
    check_usable(path, len(gold), number, why="no gold pair to score against")
    return gold


def _unknown_id(parts: list[str], source_ids: set[str] | None, target_ids: set[str] | None) -> str | None:
    for side, value, known in (("source", parts[0], source_ids), ("target", parts[1], target_ids)):
        if known is not None and value not in known:
            return f"{side} id '{value}' is not in the {side} file"
    return None


def read_scored_pairs(path: str, on_bad_line: str = "error") -> tuple[list[tuple[str, str]], list[float]]:
    """STS: ``sentence1<TAB>sentence2<TAB>score`` lines."""
    check_on_bad_line(on_bad_line)
    pairs, scores, skipped = [], [], []
    for number, text, problem in iter_lines(path):
        parts = text.split("\t") if problem is None else []
        if problem is None and len(parts) != 3:
            problem = f"expected 3 tab-separated columns (s1, s2, score), found {len(parts)}"
        if problem is None and (not parts[0].strip() or not parts[1].strip()):
            problem = "empty sentence"
        if problem is None:
            try:
                score = float(parts[2])
                if not math.isfinite(score):
                    problem = f"score '{parts[2].strip()}' is not a finite number"
            except ValueError:
                problem = f"score '{parts[2]}' is not a number"
        if problem:
            bad_line(path, number, problem, "fix the line", on_bad_line, skipped)
            continue
        pairs.append((parts[0], parts[1]))
        scores.append(score)
    if len(pairs) < 2:
        raise InputError("needs at least 2 scored pairs", where=path, hint="add more lines")
    if len(set(scores)) == 1:
        raise InputError(f"every gold score is {scores[0]:g}, so Spearman's correlation is undefined", where=path,
                         hint="pass pairs with different scores")
    return pairs, scores


# ----------------------------------------------------------------------------- multi-way parallel text

MULTIWAY_HEADER = "#langs"


@dataclass
class MultiwayText:
    """The same sentence in N languages per row, from a file whose first line is ``#langs en kk ka``.

    ``rows[i]`` holds line i+2 (None where it was skipped); a cell is None where it was empty.
    """

    name: str
    langs: list[str]
    rows: list[list[str | None] | None]
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    def kept(self) -> list[int]:
        """Indices of the rows that were not skipped."""
        return [i for i, r in enumerate(self.rows) if r is not None]

    def language_pairs(self, rows: list[int] | None = None, minimum: int = 2) -> list[ParallelText]:
        """Every pair of languages (header order) as parallel text over ``rows`` (default: all kept)
        where both cells exist; pairs with fewer than ``minimum`` such rows are left out."""
        chosen = [self.rows[i] for i in (self.kept() if rows is None else rows)]
        out = []
        for a in range(len(self.langs)):
            for b in range(a + 1, len(self.langs)):
                pairs = [(r[a], r[b]) for r in chosen if r[a] is not None and r[b] is not None]
                if len(pairs) >= minimum:
                    out.append(ParallelText(self.name, self.langs[a], self.langs[b], pairs, list(self.skipped)))
        return out


def is_multiway(path: str) -> bool:
    """Whether ``path`` starts with a ``#langs`` header line (after an optional BOM)."""
    if path == "-":
        return False
    try:
        with open(path, "rb") as handle:
            first = handle.readline(4096)
    except OSError:
        return False  # the reader that follows reports it
    return first.removeprefix(b"\xef\xbb\xbf").split(maxsplit=1)[:1] == [MULTIWAY_HEADER.encode()]


def _multiway_header(path: str, first: tuple[int, str | None, str | None] | None) -> list[str]:
    if first is None:
        raise InputError("the file has no lines", where=path,
                         hint=f"start it with a header like '{MULTIWAY_HEADER} en kk ka'")
    _, text, problem = first
    parts = (text or "").split()
    if problem or not parts or parts[0] != MULTIWAY_HEADER:
        raise InputError(problem or f"the first line must be a '{MULTIWAY_HEADER}' header", where=where(path, 1),
                         hint=f"start the file with a line like '{MULTIWAY_HEADER} en kk ka'")
    langs = [check_lang(code, where(path, 1)) for code in parts[1:]]
    if len(langs) < 2:
        raise InputError(f"the {MULTIWAY_HEADER} header names {len(langs)} language(s)", where=where(path, 1),
                         hint="name at least two, one per column")
    repeated = next((code for i, code in enumerate(langs) if code in langs[:i]), None)
    if repeated:
        raise InputError(f"language '{repeated}' appears twice in the {MULTIWAY_HEADER} header", where=where(path, 1),
                         hint="name each language once, one per column")
    return langs


def _split_row(text: str, columns: int) -> tuple[list[str | None] | None, str | None]:
    if not text.strip():
        return None, "empty line"
    parts = text.split("\t")
    if len(parts) != columns:
        return None, f"expected {columns} tab-separated columns (one per header language), found {len(parts)}"
    cells = [p if p.strip() else None for p in parts]
    if sum(c is not None for c in cells) < 2:
        return None, "fewer than 2 non-empty cells (a row needs the sentence in at least two languages)"
    return cells, None


def read_multiway(path: str, on_bad_line: str = "error") -> MultiwayText:
    """An N-column TSV under a ``#langs`` header; empty cells are allowed, a row needs two."""
    check_on_bad_line(on_bad_line)
    lines = iter_lines(path)
    langs = _multiway_header(path, next(lines, None))
    out = MultiwayText(name=path, langs=langs, rows=[])
    for number, text, problem in lines:
        cells = None
        if problem is None:
            cells, problem = _split_row(text, len(langs))
        if problem:
            bad_line(path, number, problem, "fix the line", on_bad_line, out.skipped)
        out.rows.append(cells)
    return out


def as_multiway(text: ParallelText) -> MultiwayText:
    """A two-language file as a two-column multi-way text (row i is pair i)."""
    return MultiwayText(text.name, list(text.langs), [list(p) if p else None for p in text.pairs], list(text.skipped))


def read_bitexts(files: list[str], *, langs: str | None = None, on_bad_line: str = "error",
                 need_langs: bool = True) -> list[ParallelText]:
    """Parallel text per file; a multi-way file gives one text per pair of its languages."""
    texts = []
    for path in files:
        if not is_multiway(path):
            texts.append(read_parallel(path, langs=langs, on_bad_line=on_bad_line, need_langs=need_langs))
            continue
        if langs:
            raise UsageError(f"--langs does not apply to {path}",
                             hint=f"its {MULTIWAY_HEADER} header names the languages")
        pairs = read_multiway(path, on_bad_line).language_pairs()
        if not pairs:
            raise InputError("no two languages share two rows", where=path, hint="fill more cells of each row")
        texts += pairs
    return texts
