"""``wacse embed``: sentences to an .npy matrix of unit vectors, in input order."""
from __future__ import annotations

from typing import Annotated

import numpy as np
import typer

from . import options as opt
from .common import echo_json, load_model, note, report_errors


@report_errors
def embed(
    sentences: Annotated[str, typer.Argument(help="Text file, one sentence per line ('-' for standard input).")],
    output: opt.Output = "embeddings.npy",
    model: opt.Model = None,
    pooling: opt.Pooling = None,
    prefix: opt.Prefix = None,
    max_length: opt.MaxLength = None,
    batch_size: opt.BatchSize = 64,
    device: opt.Device = "auto",
    lang: opt.Lang = None,
    dtype: Annotated[str, typer.Option(help="float32 or float16.")] = "float32",
    on_bad_line: opt.OnBadLine = "error",
    json_out: opt.Json = False,
) -> None:
    """Embed sentences into L2-normalised vectors (.npy, row i = line i)."""
    from ..embed import encode_lines
    from ..errors import UsageError
    from ..io import atomic_output, read_sentences

    if dtype not in ("float32", "float16"):
        raise UsageError(f"--dtype must be float32 or float16, not '{dtype}'")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {batch_size}")
    text = read_sentences(sentences, on_bad_line)
    encoder = load_model(model, pooling, prefix, max_length, device)
    vectors = encode_lines(encoder, text.lines, batch_size=batch_size, max_length=max_length, lang=lang)
    with atomic_output(output, "wb") as handle:
        np.save(handle, vectors.astype(dtype))
    summary = {"output": output, "sentences": len(text.lines), "dimension": int(vectors.shape[1]),
               "dtype": dtype, "skipped": len(text.skipped)}
    if json_out and output != "-":
        echo_json(summary)
    else:
        skipped = f", {len(text.skipped)} skipped (zero rows)" if text.skipped else ""
        note(f"embedded {len(text.lines)} sentences ({vectors.shape[1]} dimensions{skipped}) -> {output}")
