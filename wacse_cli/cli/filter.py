"""``wacse filter``: keep the sentence pairs of a noisy bitext that are translations."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import options as opt
from .common import echo_json, load_embedder, local, note, report_errors
from .search import Index


@report_errors
def filter_pairs(
    file: Annotated[str, typer.Argument(help="Sentence pairs (src<TAB>tgt or src ||| tgt), e.g. en-kk.tsv.")],
    output: opt.Output = "-",
    scores: Annotated[Optional[str], typer.Option(
        "--scores", help="Also write one line per input line: score, probability, keep/drop, reason.")] = None,
    precision: Annotated[float, typer.Option(
        help="Keep the most pairs whose estimated precision (calibrated on negatives made from the input) is at least this.")] = 0.95,
    threshold: Annotated[Optional[float], typer.Option(help="Keep pairs scoring at least this instead.")] = None,
    score: Annotated[str, typer.Option(help="margin (ratio margin over the whole bitext) or cosine.")] = "margin",
    neighbours: Annotated[int, typer.Option("-k", help="Neighbours for the margin, in both directions.")] = 4,
    index: Index = "auto",
    langs: opt.Langs = None,
    model: opt.Model = None,
    pooling: opt.Pooling = None,
    prefix: opt.Prefix = None,
    max_length: opt.MaxLength = None,
    batch_size: opt.BatchSize = 64,
    device: opt.Device = "auto",
    backend: opt.Backend = "auto",
    cache: Annotated[bool, typer.Option(help="Reuse cached embeddings.")] = True,
    json_out: opt.Json = False,
) -> None:
    """Drop pairs by cheap rules (each with its reason), then by a calibrated encoder score; print the kept pairs."""
    from ..errors import UsageError
    from ..filter import SCORES, FilterSettings, run_filter, summary, summary_lines, write_kept, write_scores
    from ..index import check_index
    from ..io import read_parallel
    from ..outputs import check_paths

    if score not in SCORES:
        raise UsageError(f"--score must be margin or cosine, not '{score}'")
    if not 0 < precision < 1:
        raise UsageError(f"--precision must be between 0 and 1 (exclusive), not {precision}")
    if neighbours < 1:
        raise UsageError(f"-k must be at least 1, not {neighbours}")
    check_index(index)
    check_paths([file, local(model)], [output, scores])
    text = read_parallel(file, langs=langs, on_bad_line="skip")
    encoder, forward = load_embedder(model, pooling, prefix, max_length, device, backend)
    settings = FilterSettings(precision=precision, threshold=threshold, score=score, neighbours=neighbours, index=index)
    result = run_filter(text, encoder, model, settings, cache=cache, batch_size=batch_size, max_length=max_length,
                        backend=forward)
    write_kept(output, text, result)
    if scores:
        write_scores(scores, result)
    info = summary(result, settings)
    if json_out:
        echo_json(info)
    for line in summary_lines(info):
        note(line)
