"""Sentences to L2-normalised vectors, in input order.

Sentences are tokenised once, sorted by token count so that each batch pads only to its own
longest sentence, encoded without gradients, and put back in input order.

Files are embedded as a stream, so memory depends on the chunk size and not on the corpus: a
first pass checks every line and counts them (a bad line stops the command before any model work,
and the output's shape is known up front), a second pass reads ``chunk_lines`` lines at a time,
sorts and encodes them, and appends their rows to the ``.npy`` file. The file is written
sequentially (header, then rows) to a temporary file that is renamed at the end, so it works for
standard output too and a failed run leaves nothing behind (:mod:`wacse_cli.shards` writes it and
joins the pieces of a ``--shard I/N`` run). On the ONNX backends several batches run at once, one
per core (:meth:`wacse_cli.backends.OnnxForward.map`).
"""
from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator

import numpy as np
import torch

from .backends import Forward, OnnxForward
from .errors import InputError, UsageError
from .io import atomic_output, bad_line, check_on_bad_line, decode_line, read_file_bytes
from .model import SentenceEncoder
from .progress import progress_bar
from .shards import EmbedSummary, npy_writer

CHUNK_LINES = 100_000  # lines sorted and encoded together; bounds memory, keeps batches well packed
DTYPES = ("float32", "float16")


def inference_autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _eval_mode(encoder: SentenceEncoder):
    """Dropout off while embedding; training mode restored afterwards (embedding runs mid-training)."""
    was_training = encoder.training
    encoder.eval()
    try:
        yield
    finally:
        encoder.train(was_training)


def _padded(ids: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """input_ids and attention_mask for one batch, padded on the right to its longest row.

    Built with numpy rather than ``tokenizer.pad``, whose per-batch Python overhead shows on CPU;
    right padding keeps position 0 the first real token, which ``cls`` pooling reads.
    """
    width = max(len(row) for row in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for r, row in enumerate(ids):
        input_ids[r, :len(row)] = row
        mask[r, :len(row)] = 1
    return input_ids, mask


def torch_forward(encoder: SentenceEncoder) -> Forward:
    """The PyTorch forward pass as a :data:`wacse_cli.backends.Forward` (run it in :func:`_eval_mode`)."""
    device = encoder.device

    def forward(input_ids: np.ndarray, mask: np.ndarray, lang_ids: np.ndarray | None) -> np.ndarray:
        as_tensor = (lambda a: None if a is None else torch.from_numpy(a).to(device))
        vectors, _ = encoder(as_tensor(input_ids), as_tensor(mask), as_tensor(lang_ids))
        return torch.nn.functional.normalize(vectors.float(), dim=-1).cpu().numpy()

    return forward


def _run_batches(forward: Forward, batches: Iterator[tuple]) -> Iterator[tuple[tuple, np.ndarray]]:
    """``(batch, vectors)`` in order: several batches at once where the backend can (ONNX), one by one otherwise."""
    if isinstance(forward, OnnxForward):
        return forward.map(batches)
    return ((batch, forward(*batch[:3])) for batch in batches)


def warn_missing_lang(encoder: SentenceEncoder) -> None:
    """Once per encoder: a model trained with a language embedding embeds without it when no
    language is given, which is not how it was trained."""
    if encoder.lang_embedding is None or getattr(encoder, "_warned_no_lang", False):
        return
    encoder._warned_no_lang = True
    print(f"warning: this model was trained with a language-ID embedding ({', '.join(encoder.settings.languages)}) "
          "but no language was given, so it is not applied; pass --lang (or --src/--tgt) to apply it",
          file=sys.stderr, flush=True)


def encode(
    encoder: SentenceEncoder,
    sentences: list[str],
    *,
    batch_size: int = 64,
    max_length: int | None = None,
    lang: str | None = None,
    progress: bool = True,
    desc: str = "embedding",
    bar=None,
    backend: Forward | None = None,
) -> np.ndarray:
    """float32 array of shape (len(sentences), hidden), each row of unit length.

    ``bar`` is an open progress bar to advance instead of showing a new one (the streaming path
    shows one bar over all chunks). ``backend`` runs the forward pass instead of PyTorch (see
    :func:`wacse_cli.backends.prepare_backend`).
    """
    out = np.zeros((len(sentences), encoder.hidden_size), dtype=np.float32)
    if not sentences:
        return out
    length = min(max_length or encoder.settings.max_length, encoder.model_max_length)
    texts = [encoder.settings.prefix + s for s in sentences]
    ids = encoder.tokenizer(texts, truncation=True, max_length=length)["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    lang_id = encoder.lang_id(lang)
    if lang_id is None:
        warn_missing_lang(encoder)
    pad_id = encoder.tokenizer.pad_token_id or 0
    own_bar = bar is None
    if own_bar:
        bar = progress_bar(total=len(sentences), desc=desc, unit="sent", disable=not progress, leave=False)
    def batches():
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            input_ids, mask = _padded([ids[i] for i in chosen], pad_id)
            lang_ids = None if lang_id is None else np.full(len(chosen), lang_id, dtype=np.int64)
            yield input_ids, mask, lang_ids, chosen

    with _eval_mode(encoder), torch.inference_mode(), inference_autocast(encoder.device):
        for (*_, chosen), vectors in _run_batches(backend or torch_forward(encoder), batches()):
            out[chosen] = vectors
            bar.update(len(chosen))
    if own_bar:
        bar.close()
    return out


def encode_lines(encoder: SentenceEncoder, lines: list[str | None], *, chunk_lines: int | None = None,
                 **kwargs) -> np.ndarray:
    """Like :func:`encode`, with a zero row wherever a line was skipped (None).

    With ``chunk_lines``, the lines are tokenised and encoded that many at a time under one
    progress bar, so a million lines never hold a million token lists at once.
    """
    out = np.zeros((len(lines), encoder.hidden_size), dtype=np.float32)
    if chunk_lines is None or len(lines) <= chunk_lines:
        kept = [i for i, line in enumerate(lines) if line is not None]
        out[kept] = encode(encoder, [lines[i] for i in kept], **kwargs)
        return out
    progress, desc = kwargs.pop("progress", True), kwargs.pop("desc", "embedding")
    total = sum(line is not None for line in lines)
    with progress_bar(total=total, desc=desc, unit="sent", disable=not progress, leave=False) as bar:
        for start in range(0, len(lines), chunk_lines):
            out[start:start + chunk_lines] = encode_lines(encoder, lines[start:start + chunk_lines], bar=bar, **kwargs)
    return out


# ----------------------------------------------------------------------------- the embedding cache


def cache_stem(encoder: SentenceEncoder, model_name: str, lines: list[str | None], *, max_length: int | None = None,
               lang: str | None = None, backend: OnnxForward | None = None) -> Path:
    """``<cache>/embeddings/<key>``: the cached embeddings are ``<key>.npy`` and indexes built over
    them ``<key>.<index>.faiss``. The key holds what they depend on: the model's fingerprint, its
    pooling, prefix and max length, the language, the text's content hash and the backend when it
    is not PyTorch (int8 vectors differ slightly from fp32 ones)."""
    from .io import text_sha256
    from .model import fingerprint
    from .paths import cache_dir

    length = min(max_length or encoder.settings.max_length, encoder.model_max_length)
    key = f"{fingerprint(encoder, model_name)}-{length}-{lang or ''}-{text_sha256(lines)[:24]}"
    if backend is not None:
        key += f"-{backend.name}"
    return cache_dir("embeddings") / key


def cached_encode(encoder: SentenceEncoder, model_name: str, lines: list[str | None], *, use_cache: bool = True,
                  **kwargs) -> np.ndarray:
    """:func:`encode_lines`, kept in the cache (see :func:`cache_stem`), so a second search over the
    same corpus does not embed it again."""
    kwargs.setdefault("chunk_lines", CHUNK_LINES)
    if not use_cache:
        return encode_lines(encoder, lines, **kwargs)
    stem = cache_stem(encoder, model_name, lines, max_length=kwargs.get("max_length"), lang=kwargs.get("lang"),
                      backend=kwargs.get("backend"))
    path = stem.with_name(stem.name + ".npy")
    if path.exists():
        try:
            cached = np.load(path)
            if cached.shape == (len(lines), encoder.hidden_size):
                return cached
        except (OSError, ValueError):
            pass  # a damaged cache entry is recomputed
    vectors = encode_lines(encoder, lines, **kwargs)
    with atomic_output(str(path), "wb") as handle:
        np.save(handle, vectors)
    return vectors


# ----------------------------------------------------------------------------- reading a file as a stream


def _stream_lines(handle: IO[bytes]) -> Iterator[tuple[int, str | None, str | None]]:
    """:func:`wacse_cli.io.iter_lines` one line at a time: ``(line_number, text, problem)``, the
    same splitting (``\\n`` only, a trailing ``\\r`` dropped, a leading BOM skipped) and messages."""
    handle.seek(0)
    offset = 0
    for number, raw in enumerate(handle, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        yield (number, *decode_line(raw[:-1] if raw.endswith(b"\n") else raw, offset))
        offset += len(raw)


def _problem(text: str | None, problem: str | None) -> str | None:
    """Why a line cannot be embedded (as :func:`wacse_cli.io.read_sentences` judges it), or None."""
    if problem is None and not text.strip():
        return "empty line"
    return problem


@dataclass
class SentenceFile:
    """A file of one sentence per line, checked and counted, and read again in chunks on demand.

    Standard input cannot be read twice, so it is first copied to a temporary file on disk.
    """

    name: str
    handle: IO[bytes]
    lines: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    def chunks(self, start: int, end: int, size: int = CHUNK_LINES) -> Iterator[list[str | None]]:
        """Lines ``start+1 .. end`` (rows ``start:end``) in lists of at most ``size``; None for bad lines."""
        chunk: list[str | None] = []
        for number, text, problem in _stream_lines(self.handle):
            if number > end:
                break
            if number <= start:
                continue
            chunk.append(None if _problem(text, problem) else text)
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def skipped_in(self, start: int, end: int) -> int:
        return sum(start < number <= end for number, _ in self.skipped)


def _open_binary(path: str) -> IO[bytes]:
    if path == "-":
        spool = tempfile.TemporaryFile()
        shutil.copyfileobj(sys.stdin.buffer, spool)
        return spool
    try:
        return open(path, "rb")
    except OSError:
        read_file_bytes(path)  # raises the one-line error every reader gives (no such file, a folder, ...)
        raise


@contextlib.contextmanager
def open_sentences(path: str, on_bad_line: str = "error") -> Iterator[SentenceFile]:
    """Check every line of ``path`` ('-' for standard input) and count them, without keeping them."""
    check_on_bad_line(on_bad_line)
    with _open_binary(path) as handle:
        text = SentenceFile(name=path, handle=handle)
        for number, line, problem in _stream_lines(handle):
            text.lines = number
            problem = _problem(line, problem)
            if problem:
                bad_line(path, number, problem, "remove or fill the line", on_bad_line, text.skipped)
        if not text.lines:
            raise InputError("the file has no lines", where=path, hint="pass a file with one sentence per line")
        yield text


def embed_file(
    encoder: SentenceEncoder,
    text: SentenceFile,
    output: str,
    *,
    rows: tuple[int, int] | None = None,
    dtype: str = "float32",
    chunk_lines: int = CHUNK_LINES,
    progress: bool = True,
    **kwargs,
) -> EmbedSummary:
    """Embed rows ``[start, end)`` of an opened file into ``output`` chunk by chunk (zero rows for
    skipped lines); ``kwargs`` go to :func:`encode` (batch_size, max_length, lang)."""
    if dtype not in DTYPES:
        raise UsageError(f"--dtype must be float32 or float16, not '{dtype}'")
    start, end = rows or (0, text.lines)
    skipped = text.skipped_in(start, end)
    bar = progress_bar(total=end - start - skipped, desc="embedding", unit="sent", disable=not progress, leave=False)
    with bar, npy_writer(output, (end - start, encoder.hidden_size), dtype) as append:
        for chunk in text.chunks(start, end, chunk_lines):
            append(encode_lines(encoder, chunk, bar=bar, **kwargs))
    return EmbedSummary(output, text.lines, start, end, encoder.hidden_size, dtype, skipped)
