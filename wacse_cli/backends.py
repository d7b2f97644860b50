"""Where the encoder's forward pass runs: PyTorch, or onnxruntime on the CPU (fp32 or int8).

Everything around the forward pass (prefix, tokenising, length sorting, padding, streaming) stays
in :mod:`wacse_cli.embed`; a backend only turns one padded batch into unit vectors.

The ONNX graphs are exported once per model into ``<cache>/onnx/<fingerprint>/`` with PyTorch's
maintained exporter (``torch.onnx.export(dynamo=True)``) and hold the pooling, so that one call
returns sentence vectors. The graph takes the language-ID embedding as an input (``lang_ids``,
with an extra all-zero row meaning "no language"), so models trained with one keep it.
``onnx-int8`` is the fp32 graph with onnxruntime's transformer fusions (bias+GELU, skip+layer
norm) and dynamic int8 quantisation of the weight matrices: per output channel, 7-bit weights
(``reduce_range``, which avoids the int16 overflow of u8s8 products on CPUs without VNNI), the
attention products, the embedding tables and the feed-forward output projections of the first half
of the layers left in fp32; on e5-small this keeps every vector at cosine >= 0.995 to fp32 (see
benchmarks/RESULTS.md), where quantising every weight MatMul gave 0.987-0.990 and per-tensor int8
of every MatMul and Gather 0.979. Where onnxruntime has its CPU kernel (1.23 and later), attention
is exported as ONNX's fused ``Attention`` op (opset 23), and :meth:`OnnxForward.map` runs one
batch per core, each on one thread: together 2.0x sentence-transformers' ``encode`` on a 2-core CPU.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import numpy as np
import torch

from .errors import ModelError, UsageError

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
FP32_FILE = "model-v3.onnx"  # v3: attention as one op where onnxruntime runs it (older graphs are not reused)
INT8_FILE = "model.int8-v3.onnx"
ATTENTION_OPSET = 23  # the first opset with a fused Attention op; onnxruntime runs it on the CPU from 1.23
EXPORT_CHECK_COSINE = 0.9999  # the fp32 graph must reproduce PyTorch's vectors
LARGE_BYTES = 1_800_000_000  # protobuf cannot hold a graph over 2 GB in one file
INSTALL_HINT = "install it with: pip install 'wacse[onnx]' (or use --backend torch)"

# (input_ids, attention_mask, lang_ids or None), numpy int64 -> unit vectors, float32 numpy
Forward = Callable[[np.ndarray, np.ndarray, Optional[np.ndarray]], np.ndarray]


def onnx_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx", "onnxscript"))


def resolve_backend(name: str, device: torch.device) -> str:
    """The backend to run; ``auto`` is onnx-int8 on a CPU where onnxruntime is installed (on e5-small
    2.0x sentence-transformers' ``encode``, every vector at cosine >= 0.995 to fp32, retrieval P@1
    within 0.5 points: benchmarks/RESULTS.md), torch elsewhere."""
    if name not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, not '{name}'")
    if name == "auto":
        return "onnx-int8" if device.type == "cpu" and onnx_available() else "torch"
    if name != "torch" and device.type != "cpu":
        raise UsageError(f"--backend {name} runs on the CPU, but --device is {device.type}",
                         hint="use --backend torch on a GPU, or --device cpu")
    if name != "torch" and not onnx_available():
        raise UsageError(f"--backend {name} needs onnxruntime, onnx and onnxscript, which are not installed",
                         hint=INSTALL_HINT)
    return name


class OnnxForward:
    """An onnxruntime session over an exported encoder; called like :data:`Forward`."""

    def __init__(self, path: Path, name: str, no_language: int | None):
        import onnxruntime as ort

        # One thread per run and one batch per core at once (see :meth:`map`): on 2 cores, 20-30%
        # faster than two threads sharing each batch, whose many small ops wait on each other.
        self.workers = max(1, torch.get_num_threads())
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a damaged or foreign file in the cache
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{path}: cannot load the exported graph ({first})",
                             hint=f"delete {path.parent} to export the model again") from None
        self.name = name
        self.no_language = no_language  # index of the zero row, or None when the graph has no lang_ids

    def __call__(self, input_ids: np.ndarray, mask: np.ndarray, lang_ids: np.ndarray | None = None) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if self.no_language is not None:
            feeds["lang_ids"] = lang_ids if lang_ids is not None else np.full(len(input_ids), self.no_language, np.int64)
        vectors = self.session.run(None, feeds)[0].astype(np.float32, copy=False)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def map(self, batches: Iterable[tuple]) -> Iterator[tuple[tuple, np.ndarray]]:
        """``(batch, vectors)`` for each ``batch = (input_ids, mask, lang_ids, *anything)``, in order,
        with up to :attr:`workers` batches running at once (onnxruntime runs a session from several
        threads; it leaves the other batches' results unchanged)."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(self.workers) as pool:
            pending: collections.deque = collections.deque()
            for batch in batches:
                pending.append((batch, pool.submit(self, *batch[:3])))
                if len(pending) > self.workers:
                    done, future = pending.popleft()
                    yield done, future.result()
            for done, future in pending:
                yield done, future.result()


def prepare_backend(encoder, model_name: str, name: str, *, progress: bool = True,
                    fall_back: bool = False) -> OnnxForward | None:
    """The forward pass for backend ``name`` (already resolved), exporting the model on first use;
    None means PyTorch. With ``fall_back`` (the backend was chosen by ``auto``), a model that cannot
    be exported runs in PyTorch, with a note saying so."""
    if name == "torch":
        return None
    try:
        return OnnxForward(exported_graph(encoder, model_name, name, progress=progress), name, _no_language(encoder))
    except ModelError as exc:
        if not fall_back:
            raise
        _note(True, f"note: {exc.message}; embedding with PyTorch instead (--backend torch skips the export)")
        return None


def _no_language(encoder) -> int | None:
    """The graph's index for "no language" (the zero row after the model's languages), or None
    when the model has no language embedding and the graph no ``lang_ids`` input."""
    return len(encoder.settings.languages) if encoder.lang_embedding is not None else None


# ----------------------------------------------------------------------------- exporting


class _Exportable(torch.nn.Module):
    """The encoder as ONNX sees it: token ids (and language ids) in, pooled vectors out."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.with_lang = encoder.lang_embedding is not None
        if self.with_lang:
            table = encoder.lang_embedding.weight.detach()
            self.register_buffer("lang_table", torch.cat([table, torch.zeros_like(table[:1])]))

    def forward(self, input_ids, attention_mask, lang_ids=None):
        if not self.with_lang:
            return self.encoder(input_ids, attention_mask)[0]
        embeds = self.encoder.backbone.get_input_embeddings()(input_ids) + self.lang_table[lang_ids][:, None, :]
        states = self.encoder.backbone(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state
        return self.encoder.pool(states, attention_mask)


def exported_graph(encoder, model_name: str, name: str, *, progress: bool = True) -> Path:
    """``<cache>/onnx/<fingerprint>/`` + :data:`FP32_FILE` (or :data:`INT8_FILE`), built on first use."""
    from .model import fingerprint
    from .paths import cache_dir

    folder = cache_dir("onnx") / fingerprint(encoder, model_name)
    fp32, int8 = folder / FP32_FILE, folder / INT8_FILE
    if not fp32.exists():
        _note(progress, f"exporting {model_name} to ONNX once (a minute or more for a base-size model); later runs "
                        f"reuse {folder}")
        _build(fp32, functools.partial(_export_checked, encoder))
    if name == "onnx-int8" and not int8.exists():
        _note(progress, "quantising the ONNX graph to int8 once")
        _build(int8, functools.partial(quantize_int8, fp32, config=encoder.backbone.config))
    return int8 if name == "onnx-int8" else fp32


def _note(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


def _export_checked(encoder, path: Path) -> None:
    export_fp32(encoder, path)
    check_export(encoder, path)


def _build(target: Path, make: Callable[[Path], None]) -> None:
    """Make ``target`` (and its ``.data`` file, if any) in a temporary folder beside it, then move
    them in, graph last: an interrupted export leaves no graph behind, a finished one is complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        make(work / target.name)
        for path in sorted(work.iterdir(), key=lambda p: p.name == target.name):
            if path.name.startswith(target.name):
                os.replace(path, target.parent / path.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _quiet():
    """The exporter and quantiser print progress to stdout and warn on stderr; results own stdout."""
    from .model import quiet_stdout

    loggers = [logging.getLogger(name) for name in ("", "torch", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with quiet_stdout(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _example(encoder) -> tuple:
    """A padded batch of two, so the exported graph keeps the attention mask general."""
    input_ids = torch.full((2, 8), 5, dtype=torch.long)
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 5:] = 0
    if encoder.lang_embedding is None:
        return input_ids, mask
    return input_ids, mask, torch.zeros(2, dtype=torch.long)


def export_fp32(encoder, path: Path) -> None:
    module = _Exportable(encoder).eval()
    batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens", min=2)
    shapes = {"input_ids": {0: batch, 1: tokens}, "attention_mask": {0: batch, 1: tokens}}
    names = ["input_ids", "attention_mask"]
    if module.with_lang:
        shapes["lang_ids"], names = {0: batch}, names + ["lang_ids"]
    was_training = encoder.training
    encoder.eval()
    try:
        with _quiet(), torch.no_grad():
            torch.onnx.export(module, _example(encoder), str(path), dynamo=True, opset_version=_opset(),
                              input_names=names,
                              output_names=["sentence_embedding"], dynamic_shapes=shapes,
                              external_data=_parameter_bytes(encoder) > LARGE_BYTES)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot export this model to ONNX: {first}", hint="use --backend torch") from None
    finally:
        encoder.train(was_training)


def _opset() -> int | None:
    """:data:`ATTENTION_OPSET` where the installed onnxruntime has that op's CPU kernel (one fused
    op in place of about ten per layer: 15-20% faster int8 on e5-small), else the exporter's default."""
    import onnx
    import onnxruntime

    version = tuple(int(part) for part in onnxruntime.__version__.split(".")[:2] if part.isdigit())
    known = onnx.defs.onnx_opset_version() >= ATTENTION_OPSET  # onnx 1.18 and later
    return ATTENTION_OPSET if version >= (1, 23) and known else None


def check_export(encoder, path: Path) -> None:
    """Refuse a graph that does not reproduce PyTorch's vectors on a padded batch."""
    forward = OnnxForward(path, "onnx", _no_language(encoder))
    ids = torch.randint(5, min(encoder.tokenizer.vocab_size, 1000), (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:], mask[2, 3:] = 0, 0
    lang_ids = torch.zeros(3, dtype=torch.long) if encoder.lang_embedding is not None else None
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        expected = torch.nn.functional.normalize(encoder(ids, mask, lang_ids)[0].float(), dim=-1).numpy()
    encoder.train(was_training)
    got = forward(ids.numpy(), mask.numpy(), None if lang_ids is None else lang_ids.numpy())
    lowest = float((got * expected).sum(axis=1).min())
    if not lowest >= EXPORT_CHECK_COSINE:
        raise ModelError(f"the ONNX export of this model does not reproduce its vectors (cosine {lowest:.4f})",
                         hint="use --backend torch")


def quantize_int8(source: Path, target: Path, config) -> None:
    """Fuse, then quantise the weight matrices to int8 (see the module docstring for the choices)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fused = target.with_name("fused.onnx")
    with _quiet():
        _fuse(source, fused, config)
        graph = onnx.load(str(fused), load_external_data=False).graph
        weights = {init.name for init in graph.initializer}
        activations_only = [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] not in weights]
        kept_fp32 = activations_only + early_ffn_outputs(graph, config)
        quantize_dynamic(str(fused), str(target), op_types_to_quantize=["MatMul"], nodes_to_exclude=kept_fp32,
                         weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                         use_external_data_format=_large(source))


def early_ffn_outputs(graph, config) -> list[str]:
    """The feed-forward output projections (intermediate -> hidden) of the first half of the layers.

    Their inputs, GELU outputs with large outliers, are what dynamic per-tensor activation
    quantisation handles worst; on e5-small keeping these six in fp32 raised the lowest cosine to
    fp32 from 0.990 to 0.996 and held-out P@1 from -0.9 to -0.05 points at no measurable cost in
    speed, where the later layers' gave nothing (benchmarks/RESULTS.md)."""
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    outputs = [n.name for n in graph.node  # ONNX keeps nodes in topological, hence layer, order
               if n.op_type == "MatMul" and shapes.get(n.input[1], [None])[0] == config.intermediate_size]
    return outputs[:(len(outputs) + 1) // 2]


def _fuse(source: Path, target: Path, config) -> None:
    """onnxruntime's BERT-family fusions; a graph they do not fit is quantised unfused."""
    from onnxruntime.transformers.optimizer import optimize_model

    try:
        model = optimize_model(str(source), model_type="bert", num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size)
        model.save_model_to_file(str(target), use_external_data_format=_large(source))
    except Exception:  # the fusions are an optimisation only
        import onnx

        onnx.save(onnx.load(str(source)), str(target), save_as_external_data=_large(source))


def _parameter_bytes(encoder) -> int:
    return sum(p.numel() * p.element_size() for p in encoder.parameters())


def _large(path: Path) -> bool:
    """Weights past protobuf's 2 GB limit have to live in a separate file."""
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) > LARGE_BYTES
