"""``wacse embed``: sentences to an .npy matrix of unit vectors, in input order."""
from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Optional

import typer

from . import options as opt
from .common import echo_json, load_embedder, local, note, report_errors

Shard = Annotated[Optional[str], typer.Option(
    metavar="I/N", help="I/N: embed only the I-th of N equal line ranges (I counts from 0) into a piece beside the output "
         "(big.npy -> big.shard-I-of-N.npy); run the N shards in parallel (one per GPU or process), then --merge N.")]
Merge = Annotated[Optional[int], typer.Option(
    metavar="N", help="N: join the N pieces written by --shard I/N into OUTPUT in input order, then delete them (no model needed).")]


@report_errors
def embed(
    sentences: Annotated[str, typer.Argument(metavar="FILE", help="Text file, one sentence per line ('-' for standard input).")],
    output: opt.Output = "embeddings.npy",
    model: opt.Model = None,
    pooling: opt.Pooling = None,
    prefix: opt.Prefix = None,
    max_length: opt.MaxLength = None,
    batch_size: opt.BatchSize = 64,
    device: opt.Device = "auto",
    backend: opt.Backend = "auto",
    lang: opt.Lang = None,
    dtype: Annotated[str, typer.Option(metavar="float32|float16", help="Type of the stored vectors.")] = "float32",
    shard: Shard = None,
    merge: Merge = None,
    on_bad_line: opt.OnBadLine = "error",
    json_out: opt.Json = False,
) -> None:
    """Embed sentences into L2-normalised vectors (.npy, row i = line i), reading the file as a stream."""
    from ..embed import DTYPES, embed_file, open_sentences
    from ..shards import merge_pieces, parse_shard, piece_path, shard_rows
    from ..errors import UsageError
    from ..outputs import check_paths

    if dtype not in DTYPES:
        raise UsageError(f"--dtype must be float32 or float16, not '{dtype}'")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {batch_size}")
    if shard is not None and merge is not None:
        raise UsageError("pass either --shard or --merge, not both", hint="embed the shards first, then merge them")
    if (shard is not None or merge is not None) and "-" in (sentences, output):
        raise UsageError("--shard and --merge need an input file and an output file, not standard input or output")
    if merge is not None:
        if merge < 1:
            raise UsageError(f"--merge must be at least 1, not {merge}")
        check_paths([sentences, *(piece_path(output, i, merge) for i in range(merge))], [output])
        with open_sentences(sentences, "skip") as text:  # only the line count is needed
            summary = merge_pieces(output, text.lines, merge)
        _report(summary, json_out, f"merged {merge} pieces: {summary.lines} rows")
        return
    index, count = parse_shard(shard)
    target = piece_path(output, index, count) if shard is not None else output
    check_paths([sentences, local(model)], [target])
    with open_sentences(sentences, on_bad_line) as text:  # every line is checked before the model loads
        encoder, forward = load_embedder(model, pooling, prefix, max_length, device, backend, langs={"--lang": lang})
        summary = embed_file(encoder, text, target, rows=shard_rows(text.lines, index, count), dtype=dtype,
                             batch_size=batch_size, max_length=max_length, lang=lang, backend=forward)
    what = f"{summary.lines} sentences"
    if shard is not None:
        what = f"lines {summary.start + 1}-{summary.end} of {summary.lines}"
    _report(summary, json_out, f"embedded {what}")
    if shard is not None and not json_out:
        note(f"when all {count} shards are done: wacse embed {sentences} -o {output} --merge {count}")


def _report(summary, json_out: bool, what: str) -> None:
    if json_out and summary.output != "-":
        echo_json({**asdict(summary), "sentences": summary.end - summary.start})
        return
    skipped = f", {summary.skipped} skipped (zero rows)" if summary.skipped else ""
    note(f"{what} ({summary.dimension} dimensions{skipped}) -> {summary.output}")
