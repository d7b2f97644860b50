"""``wacse align``: word alignments of parallel text, as Pharaoh ``i-j`` lines or scored JSONL."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import options as opt
from .common import echo_json, local, note, report_errors

# WSPAlign's scores are span probabilities, and WACSE keeps pairs at 0.9 or above; IterMax (embed)
# and the diagonal already choose their links, so by default every one of them is kept.
DEFAULT_THRESHOLDS = {"wspalign": 0.9}
AlignLangs = opt.langs_option("needed only for a script without spaces (zh, ja, th ...) when --words is not set")


@report_errors
def align(
    pairs: Annotated[Optional[str], typer.Argument(metavar="FILE", show_default=False, help="Parallel text ('-' for standard input): src<TAB>tgt or 'src ||| tgt' lines.")] = None,
    output: opt.Output = "-",
    aligner: Annotated[str, typer.Option(
        metavar="wspalign|embed|diagonal",
        help="wspalign (span prediction; needs its weights), embed (any encoder, offline) or diagonal (a baseline).")
    ] = "wspalign",
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", metavar="MODEL", help="Hub id or folder; wspalign's default is qiyuw/WSPAlign-xlm-base, embed needs one.")
    ] = None,
    threshold: Annotated[Optional[float], typer.Option(
        metavar="SCORE", help="Keep links scoring at least this (0 keeps all). wspalign scores forward + backward (0 to 2; default 0.9, "
             "as WACSE uses); embed and diagonal 0 to 1 (default 0: every link they find).")] = None,
    fmt: Annotated[str, typer.Option(
        "--format", metavar="pharaoh|jsonl", help="pharaoh (i-j pairs) or jsonl (words and scored links).")] = "pharaoh",
    layer: Annotated[Optional[int], typer.Option(
        metavar="N", help="embed: layer of the token vectors (default 8 of 12 layers).")] = None,
    method: Annotated[str, typer.Option(metavar="itermax|argmax", help="embed: itermax, or argmax (mutual only).")] = "itermax",
    distortion: Annotated[float, typer.Option(
        metavar="WEIGHT", help="embed: SimAlign's distortion correction, 0 (off) to 1; favours links at similar relative positions.")
    ] = 0.5,
    prior: Annotated[str, typer.Option(
        metavar="none|ibm1", help="embed: ibm1 mixes in word co-occurrence across the whole file (IBM Model 1 fitted on it).")
    ] = "none",
    words: Annotated[Optional[str], typer.Option(
        metavar="MODE", help="whitespace, tokenizer or char; default: tokenizer for zh ja th lo km my, whitespace otherwise.")] = None,
    pretokenized: Annotated[bool, typer.Option(
        "--pretokenized", help="The text is already tokenised: words are split at spaces only.")] = False,
    src: opt.Src = None,
    tgt: opt.Tgt = None,
    langs: AlignLangs = None,
    prefix: opt.Prefix = None,
    pooling: opt.Pooling = None,
    max_length: Annotated[Optional[int], typer.Option(
        metavar="TOKENS", help="Longest model input in tokens; longer sentences are cut.")] = None,
    batch_size: Annotated[int, typer.Option(metavar="N", help="Sequences (embed) or questions (wspalign) per forward pass.")] = 64,
    device: opt.Device = "auto",
    cache: Annotated[bool, typer.Option(
        help="Reuse and keep alignments in the cache (wacse train finds them there).")] = True,
    on_bad_line: opt.OnBadLine = "error",
    json_out: opt.Json = False,
) -> None:
    """Align the words of each sentence pair. Output line i holds the links of input line i."""
    from ..align import align_text
    from ..align.store import check_format, jsonl_line, pharaoh_line
    from ..io import atomic_output, read_parallel, usable
    from ..outputs import check_paths, is_special

    check_format(fmt)
    if prior != "none" and aligner != "embed":
        from ..errors import UsageError
        raise UsageError("--prior is for --aligner embed", hint="leave --prior out, or use --aligner embed")
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS.get(aligner, 0.0)
    journal = None if output == "-" or is_special(output) else f"{output}.partial"  # else in the cache
    check_paths([pairs, src, tgt, local(model)], [output, journal])
    text = usable(read_parallel(pairs, src=src, tgt=tgt, langs=langs, on_bad_line=on_bad_line, need_langs=False),
                  why="nothing to align")
    if not (words or pretokenized):
        check_languages_known(text)
    result = align_text(
        text, aligner=aligner, model=model, threshold=threshold, layer=layer, device=device, batch_size=batch_size,
        words=words, pretokenized=pretokenized, use_cache=cache, journal=journal,
        method=method, distortion=distortion, prior=prior, prefix=prefix, pooling=pooling, max_length=max_length,
    )
    with atomic_output(output) as handle:
        for number, (pair, spans, links) in enumerate(zip(text.pairs, result.spans, result.links), start=1):
            handle.write((pharaoh_line(links) if fmt == "pharaoh" else jsonl_line(number, pair, spans, links)) + "\n")
    count = sum(len(links or []) for links in result.links)
    summary = {"output": output, "lines": len(text.pairs), "links": count, "skipped": len(text.skipped),
               "truncated": result.truncated, "resumed": result.resumed, "from_cache": result.cached, **result.options}
    if json_out and output != "-":
        echo_json(summary)
        return
    how = " (from the cache)" if result.cached else " (resumed)" if result.resumed else ""
    skipped = f", {len(text.skipped)} skipped" if text.skipped else ""
    note(f"aligned {len(text.kept())} pairs{how}: {count} links at threshold {threshold}{skipped} -> {output}")


def check_languages_known(text) -> None:
    """Languages change an alignment only through how words are cut: at spaces, unless the script has none."""
    from ..align.words import unspaced_script
    from ..errors import UsageError
    from ..io import UNKNOWN_LANG

    for side, lang in enumerate(text.langs):
        if lang == UNKNOWN_LANG and unspaced_script(p[side] for p in text.pairs if p is not None):
            raise UsageError(f"{text.name}: the {('source', 'target')[side]} side is in a script without spaces, "
                             "so its language decides how words are cut",
                             hint="pass --langs (like en,zh) or --words tokenizer")
