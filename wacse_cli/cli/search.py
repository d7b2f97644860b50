"""``wacse search``: nearest corpus sentences for each query."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import options as opt
from .common import echo_json, load_model, report_errors

SCORES = ("cosine", "margin")


@report_errors
def search(
    queries: Annotated[str, typer.Argument(help="Query sentences, one per line ('-' for standard input).")],
    corpus: Annotated[str, typer.Option("--corpus", "-c", help="Corpus sentences, one per line.")],
    k: Annotated[int, typer.Option("-k", help="Results per query.")] = 5,
    score: Annotated[str, typer.Option(help="cosine, or margin (LASER's ratio margin, 4 neighbours each way).")] = "cosine",
    output: opt.Output = "-",
    model: opt.Model = None,
    pooling: opt.Pooling = None,
    prefix: opt.Prefix = None,
    max_length: opt.MaxLength = None,
    batch_size: opt.BatchSize = 64,
    device: opt.Device = "auto",
    lang: opt.Lang = None,
    corpus_lang: Annotated[Optional[str], typer.Option(help="Language of the corpus, for a language embedding.")] = None,
    cache: Annotated[bool, typer.Option(help="Reuse cached corpus embeddings.")] = True,
    on_bad_line: opt.OnBadLine = "error",
    json_out: opt.Json = False,
) -> None:
    """Print query_line, rank, score, corpus_line, corpus_text (tab-separated) per result."""
    from ..embed import cached_encode, encode_lines
    from ..errors import UsageError
    from ..io import atomic_output, read_sentences
    from ..search import search as run_search

    if score not in SCORES:
        raise UsageError(f"--score must be cosine or margin, not '{score}'")
    if k < 1:
        raise UsageError(f"-k must be at least 1, not {k}")
    query_text = read_sentences(queries, on_bad_line)
    corpus_text = read_sentences(corpus, on_bad_line)
    encoder = load_model(model, pooling, prefix, max_length, device)
    kw = {"batch_size": batch_size, "max_length": max_length}
    q_vecs = encode_lines(encoder, query_text.lines, lang=lang, desc="queries", **kw)
    c_vecs = cached_encode(encoder, model, corpus_text.lines, use_cache=cache, lang=corpus_lang, desc="corpus", **kw)
    q_rows = [i for i, line in enumerate(query_text.lines) if line is not None]
    c_rows = [i for i, line in enumerate(corpus_text.lines) if line is not None]
    scores, idx = run_search(q_vecs[q_rows], c_vecs[c_rows], k, score=score, device=encoder.device)
    results = [
        {"query_line": q + 1, "rank": rank + 1, "score": float(scores[n, rank]),
         "corpus_line": c_rows[idx[n, rank]] + 1, "corpus_text": corpus_text.lines[c_rows[idx[n, rank]]]}
        for n, q in enumerate(q_rows) for rank in range(idx.shape[1])
    ]
    if json_out:
        echo_json(results)
        return
    with atomic_output(output) as handle:
        for r in results:
            handle.write(f"{r['query_line']}\t{r['rank']}\t{r['score']:.6f}\t{r['corpus_line']}\t{r['corpus_text']}\n")
