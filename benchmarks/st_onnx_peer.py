#!/usr/bin/env python3
"""sentence-transformers' own ONNX and int8 ONNX backends, timed for benchmarks/embed.py.

Runs in its own interpreter because the ONNX backend needs optimum-onnx, which does not support
transformers 5 (wacse's); benchmarks/embed.py calls it once per round with ``--st-onnx-python``,
an environment that has ``sentence-transformers[onnx]`` (e.g. a venv made with
``--system-site-packages`` plus ``pip install 'sentence-transformers[onnx]<6'``).

The first call exports the model with optimum into ``--work`` (fp32, then int8 with
``export_dynamic_quantized_onnx_model``); later calls load those files. Each call loads both
models, encodes one warm-up batch, times one encode of the sentences per backend and writes the
vectors (``<name>.npy``, ``<name>.test.npy``) and ``times.json`` into ``--out``.

usage: python st_onnx_peer.py --model DIR --sentences FILE --test FILE --work DIR --out DIR
       [--batch-size 64] [--max-length 128] [--quantization avx2] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from pathlib import Path

PROMPT = "query: "


def load(args, work: Path, file_name: str | None):
    import onnxruntime as ort
    from sentence_transformers import SentenceTransformer

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads  # the same threads as the torch runners
    kwargs = {"session_options": options, "provider": "CPUExecutionProvider"}
    if file_name:
        kwargs["file_name"] = file_name
    model = SentenceTransformer(str(work), backend="onnx", device="cpu", model_kwargs=kwargs)
    model.max_seq_length = args.max_length
    return model


def export(args, work: Path) -> str:
    """Both ONNX files in ``work`` (once); returns the int8 file's name."""
    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    def int8_file():  # model_qint8_avx512.onnx, model_quint8_avx2.onnx, ...: the config picks the type
        found = sorted((work / "onnx").glob(f"model_*int8_{args.quantization}.onnx"))
        return f"onnx/{found[0].name}" if found else None

    if int8_file():
        return int8_file()
    started = time.perf_counter()
    model = SentenceTransformer(args.model, backend="onnx", device="cpu")  # exports with optimum; mean pooling
    model.max_seq_length = args.max_length
    model.save(str(work))
    export_dynamic_quantized_onnx_model(model, args.quantization, str(work))
    (work / "export_s.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
    return int8_file()


def main() -> None:
    ap = argparse.ArgumentParser()
    for name in ("--model", "--sentences", "--test", "--work", "--out"):
        ap.add_argument(name, required=True)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--quantization", default="avx2", help="arm64, avx2, avx512 or avx512_vnni")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import numpy as np
    import sentence_transformers
    import torch

    torch.set_num_threads(args.threads)
    work, out = Path(args.work), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    int8 = export(args, work)
    sentences = Path(args.sentences).read_text(encoding="utf-8").splitlines()
    test = Path(args.test).read_text(encoding="utf-8").splitlines()
    times = {}
    for name, file_name in (("st-onnx", None), ("st-onnx-int8", int8)):
        model = load(args, work, file_name)

        def encode(texts):
            return model.encode(texts, prompt=PROMPT, batch_size=args.batch_size, convert_to_numpy=True,
                                normalize_embeddings=True)  # a folder without modules.json gets no Normalize

        encode(sentences[:args.batch_size])
        started = time.perf_counter()
        vectors = encode(sentences)
        times[name] = time.perf_counter() - started
        np.save(out / f"{name}.npy", vectors)
        np.save(out / f"{name}.test.npy", encode(test))
    times["versions"] = {"sentence_transformers": sentence_transformers.__version__,
                         "transformers": __import__("transformers").__version__,
                         "optimum_onnx": _version("optimum-onnx"), "onnxruntime": _version("onnxruntime")}
    export_s = work / "export_s.txt"
    times["export_s"] = float(export_s.read_text()) if export_s.exists() else None
    (out / "times.json").write_text(json.dumps(times, indent=2))


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
