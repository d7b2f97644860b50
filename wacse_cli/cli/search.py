"""``wacse search``: nearest corpus sentences for each query."""
from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Optional

import typer

from . import options as opt
from .common import echo_json, load_embedder, local, note, report_errors

SCORES = ("cosine", "margin")
Index = Annotated[str, typer.Option(
    metavar="KIND", help="auto (exact search unless that means over 1e10 vector pairs on CPU, 1e12 on GPU, then faiss-ivf), "
         "exact, faiss-flat, faiss-ivf or faiss-hnsw (FAISS: pip install -e '.[faiss]' in a wacse checkout). "
         "Candidates are always rescored exactly; approximate indexes report recall@k on 256 sampled queries.")]
Nprobe = Annotated[int, typer.Option(metavar="N", help="faiss-ivf: cells searched per query (more: better recall, slower).")]
EfSearch = Annotated[int, typer.Option(metavar="N", help="faiss-hnsw: candidates kept per search (more: better recall, slower).")]

LangAlias = opt.hidden_alias("--lang")  # the old name
CorpusLangAlias = opt.hidden_alias("--corpus-lang")  # the old name

@report_errors
def search(
    queries: Annotated[str, typer.Argument(metavar="QUERIES", help="Query sentences, one per line ('-' for standard input).")],
    corpus: Annotated[str, typer.Option("--corpus", "-c", metavar="FILE", help="Corpus sentences, one per line.")],
    k: Annotated[int, typer.Option("-k", metavar="K", help="Results per query.")] = 5,
    score: Annotated[str, typer.Option(metavar="cosine|margin", help="cosine, or margin (LASER's ratio margin, 4 neighbours each way).")] = "cosine",
    index: Index = "auto",
    nprobe: Nprobe = 32,
    ef_search: EfSearch = 64,
    output: opt.Output = "-",
    model: opt.Model = None,
    pooling: opt.Pooling = None,
    prefix: opt.Prefix = None,
    max_length: opt.MaxLength = None,
    batch_size: opt.BatchSize = 64,
    device: opt.Device = "auto",
    langs: Annotated[Optional[str], typer.Option(
        metavar="QUERIES,CORPUS", help="Languages of the queries and the corpus, for a model with a language "
                                       "embedding.")] = None,
    backend: opt.Backend = "auto",
    lang: LangAlias = None,
    corpus_lang: CorpusLangAlias = None,
    cache: Annotated[bool, typer.Option(help="Reuse cached corpus embeddings and indexes.")] = True,
    on_bad_line: opt.OnBadLine = "error",
    json_out: opt.Json = False,
) -> None:
    """Print query_line, rank, score, corpus_line, corpus_text (tab-separated) per result."""
    from ..embed import cached_encode, encode_lines
    from ..errors import UsageError
    from ..index import build_index, check_index, choose_index
    from ..io import atomic_output, read_sentences, usable
    from ..outputs import check_paths
    from ..search import search as run_search

    if score not in SCORES:
        raise UsageError(f"--score must be cosine or margin, not '{score}'")
    if k < 1:
        raise UsageError(f"-k must be at least 1, not {k}")
    check_index(index, nprobe, ef_search)
    lang, corpus_lang = opt.two_langs(langs, lang, corpus_lang, "--lang/--corpus-lang")
    check_paths([queries, corpus, local(model)], [None if json_out else output])
    query_text = usable(read_sentences(queries, on_bad_line), why="nothing to search with")
    corpus_text = usable(read_sentences(corpus, on_bad_line), why="nothing to search")
    encoder, forward = load_embedder(model, pooling, prefix, max_length, device, backend,
                                     langs={"--langs": lang or corpus_lang})
    encoder.lang_id(corpus_lang)  # a code the language embedding has no row for
    kw = {"batch_size": batch_size, "max_length": max_length, "backend": forward}
    q_vecs = encode_lines(encoder, query_text.lines, lang=lang, desc="queries", **kw)
    c_vecs = cached_encode(encoder, model, corpus_text.lines, use_cache=cache, lang=corpus_lang, desc="corpus", **kw)
    q_rows = [i for i, line in enumerate(query_text.lines) if line is not None]
    c_rows = [i for i, line in enumerate(corpus_text.lines) if line is not None]
    q_vecs, c_vecs = q_vecs[q_rows], c_vecs[c_rows]
    kind, advice = choose_index(index, len(q_rows) * len(c_rows), encoder.device)
    if advice:
        note(advice)
    ikw = {"nprobe": nprobe, "ef_search": ef_search, "device": encoder.device}
    wanted = k if score == "cosine" else max(k, 4)
    corpus_index, report = indexed(encoder, model, corpus_text.lines, c_vecs, q_vecs, wanted, kind, "queries -> corpus",
                                   lang=corpus_lang, max_length=max_length, cache=cache, backend=forward, **ikw)
    query_index = None
    if score == "margin" and kind != "exact":
        query_index, _ = build_index(q_vecs, kind, **ikw)  # the corpus rows' neighbourhoods among the queries
    scores, idx = run_search(q_vecs, c_vecs, k, score=score, device=encoder.device,
                             corpus_index=corpus_index, query_index=query_index)
    results = [
        {"query_line": q + 1, "rank": rank + 1, "score": float(scores[n, rank]),
         "corpus_line": c_rows[idx[n, rank]] + 1, "corpus_text": corpus_text.lines[c_rows[idx[n, rank]]]}
        for n, q in enumerate(q_rows) for rank in range(idx.shape[1])
    ]
    if json_out:
        echo_json({"index": report, "results": results})
        return
    with atomic_output(output) as handle:
        for r in results:
            handle.write(f"{r['query_line']}\t{r['rank']}\t{r['score']:.6f}\t{r['corpus_line']}\t{r['corpus_text']}\n")
    skipped = len(query_text.skipped) + len(corpus_text.skipped)
    if skipped:
        note(f"{skipped} bad input line(s) skipped (--on-bad-line skip)")


def indexed(encoder, model: str, lines: list, vectors, queries, k: int, kind: str, label: str, *, lang: str | None,
            max_length: int | None, cache: bool, backend=None, **kwargs):
    """(index over ``vectors``, its report as a dict): an index of ``kind``, saved beside the
    cached embeddings of ``lines`` when caching, with its recall@k for ``queries`` noted on stderr."""
    from ..embed import cache_stem
    from ..index import index_for

    stem = None
    if cache and kind != "exact":
        stem = cache_stem(encoder, model, lines, max_length=max_length, lang=lang, backend=backend)
    index, report = index_for(vectors, queries, k, kind, cache_stem=stem, **kwargs)
    if report.recall is not None:
        note(report.line(label))
    return index, asdict(report)
