"""Options shared by several commands."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

Model = Annotated[Optional[str], typer.Option("--model", "-m", help="Hugging Face model id or local folder.")]
Pooling = Annotated[
    Optional[str],
    typer.Option(help="cls (the state at position 0, before any pooler) or mean; default: stored with the model, else cls."),
]
Prefix = Annotated[Optional[str], typer.Option(help='Text put before every sentence (e5 models expect "query: ").')]
MaxLength = Annotated[Optional[int], typer.Option(help="Longest input in tokens; default: stored with the model, else 128.")]
BatchSize = Annotated[int, typer.Option(help="Sentences per forward pass.")]
Device = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
Lang = Annotated[Optional[str], typer.Option(help="Language code for a model trained with a language embedding.")]
Langs = Annotated[Optional[str], typer.Option(help="Language codes as src,tgt when the file name does not give them.")]
OnBadLine = Annotated[str, typer.Option(help="error: stop at the first bad line; skip: skip it and count it.")]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
Output = Annotated[str, typer.Option("--output", "-o", help="Output file ('-' for standard output).")]
Backend = Annotated[str, typer.Option(
    envvar="WACSE_BACKEND",
    help="Where the forward pass runs: torch, onnx (onnxruntime, CPU) or onnx-int8 (int8 weights, CPU, about "
         "2x fp32 torch at cosine >= 0.99); auto: torch on a GPU, onnx-int8 on a CPU when onnxruntime is installed "
         "(pip install 'wacse[onnx]'), else torch. The ONNX graphs are exported once per model into the cache.")]
