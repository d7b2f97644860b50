"""Writing ``.npy`` files row block by row block, and the pieces of a sharded embedding run.

``--shard I/N`` embeds the I-th of N equal line ranges into a piece file (:func:`piece_path`);
:func:`merge_pieces` joins the pieces in input order, a block at a time, so memory stays small.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .errors import InputError, UsageError
from .io import atomic_output

MERGE_ROWS = 65_536  # rows copied at a time when joining pieces


@contextlib.contextmanager
def npy_writer(path: str, shape: tuple[int, int], dtype: str) -> Iterator[Callable[[np.ndarray], None]]:
    """Yield ``append(rows)``: the ``.npy`` header is written first, then rows as they come.

    The result is an ordinary ``.npy`` (``np.load(path, mmap_mode="r")`` maps it without reading
    it); through :func:`wacse_cli.io.atomic_output` it appears only once every row is written.
    """
    written = 0
    with atomic_output(path, "wb") as handle:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(handle, header)

        def append(rows: np.ndarray) -> None:
            nonlocal written
            handle.write(np.ascontiguousarray(rows, dtype=dtype).tobytes())
            written += len(rows)

        yield append
        if written != shape[0]:
            raise RuntimeError(f"wrote {written} rows of {shape[0]}")


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``: the third of four line ranges (ranges count from 0)."""
    if text is None:
        return 0, 1
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if n < 1 or not 0 <= i < n:
        raise UsageError(f"--shard must be I/N with 0 <= I < N, not '{text}'",
                         hint="use 0/4, 1/4, 2/4 and 3/4 for four shards")
    return i, n


def shard_rows(lines: int, index: int, count: int) -> tuple[int, int]:
    """Rows ``[start, end)`` of shard ``index`` of ``count``: equal ranges, the rest spread evenly."""
    return lines * index // count, lines * (index + 1) // count


def piece_path(output: str, index: int, count: int) -> str:
    """Where shard ``index`` of ``count`` writes its rows: ``big.npy`` -> ``big.shard-2-of-4.npy``."""
    stem = output.removesuffix(".npy")
    return f"{stem}.shard-{index}-of-{count}.npy"


@dataclass
class EmbedSummary:
    output: str
    lines: int  # lines in the input
    start: int  # first row written (row i is line i+1)
    end: int  # one past the last row written
    dimension: int
    dtype: str
    skipped: int  # bad lines in the range, written as zero rows


def _load_piece(path: str, expected: tuple[int, int], lines: int) -> np.ndarray:
    if not Path(path).is_file():
        raise UsageError(f"{path}: no such piece", hint="run every shard (--shard I/N) before --merge")
    try:
        piece = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise InputError(f"not a readable .npy file ({exc})", where=path, hint="run that shard again") from None
    if piece.ndim != 2 or len(piece) != expected[1] - expected[0]:
        raise InputError(
            f"has {len(piece)} rows, but lines {expected[0] + 1}-{expected[1]} of a {lines}-line input need "
            f"{expected[1] - expected[0]}",
            where=path, hint="run that shard again on the same input",
        )
    return piece


def merge_pieces(output: str, lines: int, count: int) -> EmbedSummary:
    """Join the ``count`` pieces of ``output`` (see :func:`piece_path`) in input order, block by
    block so memory stays small, then delete the pieces."""
    paths = [piece_path(output, i, count) for i in range(count)]
    pieces = [_load_piece(p, shard_rows(lines, i, count), lines) for i, p in enumerate(paths)]
    first = pieces[0]
    for path, piece in zip(paths, pieces):
        if piece.shape[1] != first.shape[1] or piece.dtype != first.dtype:
            raise InputError(
                f"has {piece.shape[1]} {piece.dtype} columns, but {paths[0]} has {first.shape[1]} {first.dtype}",
                where=path, hint="embed every shard with the same model and --dtype",
            )
    with npy_writer(output, (lines, first.shape[1]), first.dtype.name) as append:
        for piece in pieces:
            for block in range(0, len(piece), MERGE_ROWS):
                append(piece[block:block + MERGE_ROWS])
    for path in paths:
        os.unlink(path)
    return EmbedSummary(output, lines, 0, lines, int(first.shape[1]), first.dtype.name, 0)

