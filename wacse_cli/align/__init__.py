"""Word alignment of parallel text: the word pairs that the AWP and WTR training objectives learn from.

:func:`alignments_for` is what training calls; ``wacse align`` calls :func:`align_text`, which
also returns what the command reports. Both look in the alignment cache first (keyed by the
text's content hash, the aligner and its options, the model's fingerprint and the threshold),
work through the input in fixed chunks of lines recorded in a journal as they finish (so a
killed run resumes where it stopped), and leave the finished result in the cache.

Aligners: ``wspalign`` (span prediction with a question-answering model), ``embed`` (SimAlign's
method on any encoder, offline) and ``diagonal`` (a baseline: word i to the word at the same
relative position).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ModelError, UsageError
from ..io import ParallelText, text_sha256
from ..paths import cache_dir
from ..progress import progress_bar
from .store import Journal, Links, links_from_file, read_cached, read_links
from .words import check_mode, token_word_ids, word_spans, words_mode_for

ALIGNERS = ("wspalign", "embed", "diagonal")
CHUNK_LINES = 256
CACHE_VERSION = 2  # 2: WSPAlign scores as in its inference code (forward + backward, spans split)

__all__ = [
    "ALIGNERS", "AlignResult", "align_text", "alignments_for", "links_from_file", "read_links",
    "token_word_ids", "word_spans", "words_mode_for",
]


@dataclass
class AlignResult:
    """Links per input line (None where the line was skipped), each side's word spans, and counts."""

    links: list[Links | None]
    spans: list[tuple[list, list] | None]
    truncated: int = 0
    resumed: bool = False
    cached: bool = False
    key: str = ""
    options: dict = field(default_factory=dict)


def alignments_for(text: ParallelText, *, aligner: str, model, threshold: float, layer: int | None = None,
                   device: str = "auto", batch_size: int = 64, progress: bool = True,
                   **model_options) -> list[Links | None]:
    """Per input line, the kept ``(src_word, tgt_word, score)`` links; None for skipped lines.

    ``model`` is a Hub id or folder, or (for ``aligner="embed"``) an already-loaded
    :class:`~wacse_cli.model.SentenceEncoder`, whose prefix is respected. ``model_options``:
    ``words`` (a word mode for both sides; default by language), ``pretokenized``, ``method``,
    ``temperature``, ``distortion``, ``max_length``, ``max_span``, ``prefix``, ``pooling``, ``use_cache``,
    ``journal`` (where to keep progress) and ``chunk_lines``.
    """
    return align_text(text, aligner=aligner, model=model, threshold=threshold, layer=layer, device=device,
                      batch_size=batch_size, progress=progress, **model_options).links


def max_threshold(aligner: str) -> int:
    """WSPAlign scores a pair with its forward plus its backward score (up to 2); the others up to 1."""
    return 2 if aligner == "wspalign" else 1


def align_text(text: ParallelText, *, aligner: str, model, threshold: float, layer: int | None = None,
               device: str = "auto", batch_size: int = 64, progress: bool = True, words: str | None = None,
               pretokenized: bool = False, use_cache: bool = True, journal: str | Path | None = None,
               chunk_lines: int | None = None, **options) -> AlignResult:
    """Align every kept line of ``text``; see :func:`alignments_for`."""
    if aligner not in ALIGNERS:
        raise UsageError(f"unknown aligner '{aligner}'", hint="use wspalign, embed or diagonal")
    if not 0 <= threshold <= max_threshold(aligner):
        raise UsageError(f"--threshold must be between 0 and {max_threshold(aligner)} for {aligner}, not {threshold}")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {batch_size}")
    worker, model_key = make_aligner(aligner, model, layer=layer, device=device, batch_size=batch_size,
                                     langs=text.langs, **options)
    modes = [check_mode(words) if words else words_mode_for(lang, pretokenized) for lang in text.langs]
    spans = line_spans(text, modes, getattr(worker, "tokenizer", None))
    key = cache_key(text, aligner, model_key, worker.options(), threshold, modes)
    chunk_lines = chunk_lines or CHUNK_LINES
    header = {"wacse_alignments": CACHE_VERSION, "key": key, "lines": len(text.pairs), "chunk_lines": chunk_lines,
              "chunks": -(-len(text.pairs) // chunk_lines), "batch_size": batch_size}
    result = AlignResult(links=[], spans=spans, key=key,
                         options={"aligner": aligner, "threshold": threshold, "words": modes, **worker.options()})
    cache_file = cache_dir("alignments") / f"{key}.jsonl"
    cached = read_cached(cache_file, header) if use_cache else None
    if cached is not None:
        result.links, result.cached = cached, True
        return result
    if hasattr(worker, "fit"):
        kept = [i for i, pair in enumerate(text.pairs) if pair is not None]
        worker.fit([text.pairs[i] for i in kept], [spans[i] for i in kept])
    log = Journal(Path(journal) if journal else cache_dir("alignments") / f"{key}.partial", header).load()
    result.resumed = log.resumed
    _run_chunks(text, spans, worker, threshold, log, progress)
    result.links, result.truncated = log.links(), worker.truncated
    _finish(log.path, cache_file if use_cache else None)
    if worker.truncated:
        print(f"warning: {worker.truncated} sentence(s) longer than the model's maximum ({worker.max_length} tokens) "
              "were truncated; their last words have no links", file=sys.stderr, flush=True)
    return result


def line_spans(text: ParallelText, modes: list[str], tokenizer) -> list[tuple[list, list] | None]:
    """Each kept line's (source word spans, target word spans)."""
    return [None if pair is None else tuple(word_spans(side, mode, tokenizer) for side, mode in zip(pair, modes))
            for pair in text.pairs]


def cache_key(text: ParallelText, aligner: str, model_key: str, options: dict, threshold: float,
              modes: list[str]) -> str:
    lines = [None if p is None else f"{p[0]}\t{p[1]}" for p in text.pairs]
    content = {"version": CACHE_VERSION, "text": text_sha256(lines), "aligner": aligner, "model": model_key,
               "options": options, "threshold": threshold, "words": modes}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:32]


def _run_chunks(text: ParallelText, spans, worker, threshold: float, log: Journal, progress: bool) -> None:
    size = log.header["chunk_lines"]
    bar = progress_bar(total=len(text.kept()), desc=f"aligning ({worker.name})", unit="pair", disable=not progress, leave=False)
    for index in range(log.header["chunks"]):
        lines = range(index * size, min(len(text.pairs), (index + 1) * size))
        kept = [i for i in lines if text.pairs[i] is not None]
        goal = bar.n + len(kept)
        if index not in log.chunks:
            links = worker.align([text.pairs[i] for i in kept], [spans[i] for i in kept], _advancer(bar))
            record: list[Links | None] = [None] * len(lines)
            for i, found in zip(kept, links):
                record[i - lines.start] = [link for link in found if link[2] >= threshold]
            log.append(index, record)
        bar.update(goal - bar.n)
    bar.refresh()  # tqdm skips frames drawn too soon after the last; the final one must show 100%
    bar.close()


def _advancer(bar):
    """Progress in fractions of a pair, shown in whole pairs."""
    done = [float(bar.n)]

    def advance(amount: float) -> None:
        before = int(done[0])
        done[0] += amount
        bar.update(int(done[0]) - before)

    return advance


def _finish(journal: Path, cache_file: Path | None) -> None:
    """Move the complete journal into the cache, or delete it when the cache is not used."""
    if cache_file is None:
        journal.unlink(missing_ok=True)
        return
    tmp = cache_file.with_name(cache_file.name + ".tmp")
    shutil.move(str(journal), tmp)
    os.replace(tmp, cache_file)


# ----------------------------------------------------------------------------- aligners


def make_aligner(aligner: str, model, *, layer: int | None, device: str, batch_size: int,
                 langs: tuple[str, str] = ("", ""), **options):
    """(aligner object, model fingerprint) for ``aligner`` with ``model`` (a name, or an encoder)."""
    from ..model import SentenceEncoder, before_hub_access

    if isinstance(model, str) and model:
        before_hub_access(model)
    if aligner == "diagonal":
        return DiagonalAligner(_tokenizer_or_none(model)), "none"
    if aligner == "wspalign":
        if isinstance(model, SentenceEncoder):
            raise UsageError("the wspalign aligner needs a question-answering model, not a sentence encoder",
                             hint="use --aligner embed to align with an encoder")
        return _wspalign(model, device=device, batch_size=batch_size, layer=layer, **options)
    from .embedding import EmbedAligner

    encoder, key = _encoder(model, device=device, **options)
    names = ("method", "temperature", "distortion", "max_length", "prior", "prior_weight")
    embed_options = {k: options[k] for k in names if options.get(k) is not None}
    return EmbedAligner(encoder, layer=layer, batch_size=batch_size, langs=langs, **embed_options), key


def _wspalign(model: str | None, *, device: str, batch_size: int, layer: int | None, max_length=None,
              max_span=None, **_):
    from .wspalign import DEFAULT_MODEL, MAX_SPAN, WSPAligner, load_qa_model

    if layer is not None:
        raise UsageError("--layer is for --aligner embed", hint="leave it out with wspalign")
    name = model or DEFAULT_MODEL
    _check_local(name)
    try:
        tokenizer, qa_model, key = load_qa_model(name, device)
    except ModelError as exc:
        raise ModelError(f"cannot load the WSPAlign model: {exc.message}",
                         hint="download it once with network access, or align offline with any encoder: "
                              "--aligner embed -m MODEL") from None
    return WSPAligner(tokenizer, qa_model, batch_size=batch_size, max_length=max_length,
                      max_span=max_span or MAX_SPAN), key


def _encoder(model, *, device: str, prefix=None, pooling=None, max_length=None, **_):
    from ..model import SentenceEncoder, fingerprint, load_encoder

    if isinstance(model, SentenceEncoder):
        return model, weights_key(model)
    if not model:
        raise UsageError("--aligner embed needs --model",
                         hint="pass the encoder to align with, e.g. -m xlm-roberta-base")
    encoder = load_encoder(model, pooling=pooling, prefix=prefix, max_length=max_length, device=device)
    return encoder, fingerprint(encoder, model)


def weights_key(encoder) -> str:
    """A fingerprint of an encoder in memory: its settings and every weight (it may be mid-training)."""
    import torch

    digest = hashlib.sha256(json.dumps(asdict(encoder.settings), sort_keys=True).encode())
    for name, tensor in encoder.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:20]


def _check_local(model: str) -> None:
    from ..model import check_model_folder

    if Path(model).expanduser().exists():
        check_model_folder(Path(model).expanduser(), model)


def _tokenizer_or_none(model):
    if model is None:
        return None
    if hasattr(model, "tokenizer"):
        return model.tokenizer
    from transformers import AutoTokenizer

    from ..model import load_error, quiet_transformers

    quiet_transformers()
    _check_local(model)
    try:
        local = Path(model).expanduser()
        return AutoTokenizer.from_pretrained(str(local) if local.exists() else model)
    except (OSError, ValueError, KeyError) as exc:
        raise load_error(model, exc) from None


class DiagonalAligner:
    """The trivial baseline: source word i to the target word at the same relative position."""

    name = "diagonal"
    max_length = 0

    def __init__(self, tokenizer=None):
        self.tokenizer = tokenizer
        self.truncated = 0

    def options(self) -> dict:
        return {}

    def align(self, pairs, spans, advance=lambda n: None) -> list:
        from ..evaluate import diagonal_links

        advance(len(pairs))
        return [[(i, j, 1.0) for i, j in diagonal_links(len(s), len(t))] for s, t in spans]
