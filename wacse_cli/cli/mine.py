"""``wacse mine``: parallel sentences from two monolingual files (LASER's margin protocol)."""
from __future__ import annotations

import math
from typing import Annotated, Optional

import typer

from . import options as opt
from .common import echo_json, load_embedder, local, note, report_errors
from .search import EfSearch, Index, Nprobe, indexed

SrcLangAlias = opt.hidden_alias("--src-lang")  # the old name
TgtLangAlias = opt.hidden_alias("--tgt-lang")  # the old name


@report_errors
def mine(
    source: Annotated[str, typer.Argument(metavar="SOURCE", help="Source sentences, one per line.")],
    target: Annotated[str, typer.Argument(metavar="TARGET", help="Target sentences, one per line.")],
    threshold: Annotated[Optional[float], typer.Option(metavar="MARGIN", help="Keep pairs with a margin at least this (LASER used 1.04-1.1).")] = None,
    neighbours: Annotated[int, typer.Option("-k", metavar="K", help="Neighbours for the margin, in both directions.")] = 4,
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
        metavar="SRC,TGT", help="Languages of the two files, for a model with a language embedding.")] = None,
    backend: opt.Backend = "auto",
    src_lang: SrcLangAlias = None,
    tgt_lang: TgtLangAlias = None,
    cache: Annotated[bool, typer.Option(help="Reuse cached embeddings and indexes.")] = True,
    on_bad_line: opt.OnBadLine = "error",
    json_out: opt.Json = False,
) -> None:
    """Print score, source and target (tab-separated) for mined pairs, best first."""
    from ..embed import cached_encode
    from ..errors import UsageError
    from ..index import check_index, choose_index
    from ..io import atomic_output, read_sentences, usable
    from ..outputs import check_paths
    from ..search import mine as run_mine

    if neighbours < 1:
        raise UsageError(f"-k must be at least 1, not {neighbours}")
    if threshold is not None and not math.isfinite(threshold):
        raise UsageError(f"--threshold must be a finite number, not {threshold}")
    check_index(index, nprobe, ef_search)
    src_lang, tgt_lang = opt.two_langs(langs, src_lang, tgt_lang, "--src-lang/--tgt-lang")
    check_paths([source, target, local(model)], [None if json_out else output])
    src_text, tgt_text = (usable(read_sentences(path, on_bad_line), why="nothing to mine") for path in (source, target))
    encoder, forward = load_embedder(model, pooling, prefix, max_length, device, backend,
                                     langs={"--langs": src_lang or tgt_lang})
    encoder.lang_id(tgt_lang)  # a code the language embedding has no row for
    kw = {"batch_size": batch_size, "max_length": max_length, "use_cache": cache, "backend": forward}
    src_vecs = cached_encode(encoder, model, src_text.lines, lang=src_lang, desc="source", **kw)
    tgt_vecs = cached_encode(encoder, model, tgt_text.lines, lang=tgt_lang, desc="target", **kw)
    s_rows = [i for i, line in enumerate(src_text.lines) if line is not None]
    t_rows = [i for i, line in enumerate(tgt_text.lines) if line is not None]
    src_vecs, tgt_vecs = src_vecs[s_rows], tgt_vecs[t_rows]
    kind, advice = choose_index(index, 2 * len(s_rows) * len(t_rows), encoder.device)
    if advice:
        note(advice)
    ikw = {"nprobe": nprobe, "ef_search": ef_search, "device": encoder.device, "max_length": max_length, "cache": cache,
           "backend": forward}
    tgt_index, to_tgt = indexed(encoder, model, tgt_text.lines, tgt_vecs, src_vecs, neighbours, kind,
                                "source -> target", lang=tgt_lang, **ikw)
    src_index, to_src = indexed(encoder, model, src_text.lines, src_vecs, tgt_vecs, neighbours, kind,
                                "target -> source", lang=src_lang, **ikw)
    pairs = run_mine(src_vecs, tgt_vecs, k=neighbours, threshold=threshold, device=encoder.device,
                     src_index=src_index, tgt_index=tgt_index)
    rows = [(p.score, src_text.lines[s_rows[p.src]], tgt_text.lines[t_rows[p.tgt]], s_rows[p.src], t_rows[p.tgt])
            for p in pairs]
    if json_out:
        echo_json({"index": {"source_to_target": to_tgt, "target_to_source": to_src}, "pairs": [
            {"score": s, "source": a, "target": b, "source_line": i + 1, "target_line": j + 1} for s, a, b, i, j in rows
        ]})
        return
    with atomic_output(output) as handle:
        for s, a, b, _, _ in rows:
            handle.write(f"{s:.6f}\t{a}\t{b}\n")
    skipped = len(src_text.skipped) + len(tgt_text.skipped)
    note(f"mined {len(rows)} pairs" + (f"; {skipped} bad input line(s) skipped (--on-bad-line skip)" if skipped else ""))
