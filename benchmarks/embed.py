#!/usr/bin/env python3
"""Embedding throughput and quality per backend: ``wacse embed --backend torch|onnx|onnx-int8``
against sentence-transformers' ``encode`` and its own ONNX and int8 ONNX backends, in one run.

All embed the same real sentences (a seeded mix of every language in ../shared/data, both sides
of each pair) with the same model folder, mean pooling and "query: " prompt, batch size, max
length, device and threads. wacse runs the code path behind ``wacse embed`` (check the file,
stream it in chunks, sort by token count, write the .npy); sentence-transformers encodes a list
in memory. Model loading, ONNX export (reported apart) and one warm-up batch each are excluded.
Before any timing wacse torch and sentence-transformers must agree (cosine > 0.999 for every
sentence). Runs alternate and the best of ``--repeats`` counts, so that noise from other work on
the machine hits all alike.

Quality beside speed: the lowest cosine between each runner's vector and wacse torch's fp32
vector over all sentences, and retrieval P@1 (both directions, averaged over languages) on
held-out pairs of ../shared/data/ui (the last ``--test-pairs`` of each file after a seeded
shuffle).

sentence-transformers' ONNX backends need optimum-onnx, which does not support transformers 5;
``--st-onnx-python`` names an interpreter that has ``sentence-transformers[onnx]`` (see
benchmarks/st_onnx_peer.py), called once per round. Without it those two rows are left out.

usage: python benchmarks/embed.py [--model ../e5-small] [--sentences 2000] [--batch-size 64]
       [--st-onnx-python /tmp/stvenv/bin/python]
       (build the model with: python ../shared/tools/make_e5_small.py ../e5-small)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))  # this checkout's wacse_cli, whatever is installed


def real_sentences(count: int, seed: int = 0) -> list[str]:
    sentences = []
    for path in sorted(SHARED.glob("data/*/en-*.tsv")):
        for row in path.read_text(encoding="utf-8").splitlines():
            sentences.extend(s for s in row.split("\t")[:2] if s.strip())
    random.Random(seed).shuffle(sentences)
    if len(sentences) < count:
        sys.exit(f"only {len(sentences)} sentences under {SHARED / 'data'}; ask for fewer with --sentences")
    return sentences[:count]


def held_out_pairs(per_file: int, seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """The last ``per_file`` pairs of each ui file after a seeded shuffle, by language."""
    pairs = {}
    for path in sorted(SHARED.glob("data/ui/en-*.tsv")):
        rows = [tuple(r.split("\t")[:2]) for r in path.read_text(encoding="utf-8").splitlines() if "\t" in r]
        random.Random(seed).shuffle(rows)
        pairs[path.stem.split("-")[1]] = rows[-per_file:]
    return pairs


def test_sentences(pairs: dict[str, list[tuple[str, str]]]) -> list[str]:
    return [s for rows in pairs.values() for side in (0, 1) for s in (r[side] for r in rows)]


def p_at_1(vectors, pairs: dict[str, list[tuple[str, str]]]) -> float:
    """Mean over languages of the mean of en->xx and xx->en P@1 (vectors in test_sentences order)."""
    from wacse_cli.evaluate import retrieval_accuracy

    scores, start = [], 0
    for rows in pairs.values():
        n = len(rows)
        scores.append(retrieval_accuracy(vectors[start:start + n], vectors[start + n:start + 2 * n])["mean"])
        start += 2 * n
    return sum(scores) / len(scores)


def wacse_runners(args, path: Path) -> tuple[dict, dict]:
    """({name: (time_run(file), embed(list))}, {backend: export seconds}) for the three backends."""
    import numpy as np

    from wacse_cli.backends import prepare_backend
    from wacse_cli.embed import embed_file, encode, open_sentences
    from wacse_cli.model import load_encoder

    encoder = load_encoder(args.model, pooling="mean", prefix="query: ", max_length=args.max_length, device=args.device)
    out = str(path.with_suffix(".npy"))
    runners, export_s = {}, {}
    for backend in args.backends.split(","):
        started = time.perf_counter()
        forward = prepare_backend(encoder, args.model, backend, progress=False)
        export_s[backend] = time.perf_counter() - started

        def run(file: Path, forward=forward):
            with open_sentences(str(file)) as text:
                embed_file(encoder, text, out, batch_size=args.batch_size, max_length=args.max_length,
                           progress=False, backend=forward)
            return np.load(out)

        def embed(sentences: list[str], forward=forward):
            return encode(encoder, sentences, batch_size=args.batch_size, max_length=args.max_length,
                          progress=False, backend=forward)

        runners[f"wacse-{backend}"] = (run, embed)
    return runners, export_s


def st_runner(args):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    from wacse_cli.model import quiet_transformers

    quiet_transformers()
    transformer = Transformer(args.model, max_seq_length=args.max_length)
    model = SentenceTransformer(
        modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean"), Normalize()], device=args.device
    )

    def run(sentences: list[str]):
        return model.encode(sentences, prompt="query: ", batch_size=args.batch_size, convert_to_numpy=True)

    return run


def st_onnx_round(args, tmp: Path, text: Path, test: Path, round_: int) -> dict:
    """One call of st_onnx_peer.py: {"times": {...}, name: (vectors, test vectors)}."""
    import numpy as np
    import torch

    out = tmp / f"peer-{round_}"
    command = [args.st_onnx_python, str(ROOT / "benchmarks" / "st_onnx_peer.py"), "--model", args.model,
               "--sentences", str(text), "--test", str(test), "--work", str(tmp / "st-onnx"), "--out", str(out),
               "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
               "--quantization", args.st_quantization, "--threads", str(torch.get_num_threads())]
    subprocess.run(command, check=True)
    times = json.loads((out / "times.json").read_text())
    result = {"times": times}
    for name in ("st-onnx", "st-onnx-int8"):
        result[name] = (np.load(out / f"{name}.npy"), np.load(out / f"{name}.test.npy"))
    return result


LABELS = {
    "wacse-torch": "wacse embed --backend torch",
    "wacse-onnx": "wacse embed --backend onnx",
    "wacse-onnx-int8": "wacse embed --backend onnx-int8",
    "st": "sentence-transformers encode (torch)",
    "st-onnx": "sentence-transformers backend=onnx",
    "st-onnx-int8": "sentence-transformers int8 ONNX",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=os.environ.get("WACSE_E5_SMALL", str(ROOT.parent / "e5-small")))
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--backends", default="torch,onnx,onnx-int8", help="wacse backends to run, comma-separated")
    ap.add_argument("--test-pairs", type=int, default=150, help="held-out ui pairs per language for P@1")
    ap.add_argument("--st-onnx-python", help="interpreter with sentence-transformers[onnx] for ST's ONNX backends")
    ap.add_argument("--st-quantization", default="avx2", help="ST's int8 config: arm64, avx2, avx512, avx512_vnni")
    ap.add_argument("--min-agreement", type=float, default=0.999,
                    help="lowest cosine allowed between wacse torch and ST torch (bf16 autocast on a GPU: 0.99)")
    args = ap.parse_args()
    if not Path(args.model, "config.json").exists():
        sys.exit(f"no model at {args.model}; build it with: python ../shared/tools/make_e5_small.py {args.model}")
    sentences = real_sentences(args.sentences)
    pairs = held_out_pairs(args.test_pairs)
    tests = test_sentences(pairs)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["WACSE_HOME"] = str(tmp / "wacse-home")  # a fresh cache: the export is timed from scratch
        text, warm, test = tmp / "sentences.txt", tmp / "warm.txt", tmp / "test.txt"
        text.write_text("\n".join(sentences) + "\n", encoding="utf-8")
        warm.write_text("\n".join(sentences[:args.batch_size]) + "\n", encoding="utf-8")
        test.write_text("\n".join(tests) + "\n", encoding="utf-8")
        wacse, export_s = wacse_runners(args, text)
        st = st_runner(args)
        runners = {**{name: (run, text) for name, (run, _) in wacse.items()}, "st": (st, sentences)}
        for name, (run, _) in runners.items():
            run(warm if name.startswith("wacse") else sentences[:args.batch_size])
        times, outputs, peer = {name: [] for name in runners}, {}, {}
        for repeat in range(args.repeats):
            for name, (run, data) in runners.items():
                started = time.perf_counter()
                vectors = run(data)
                times[name].append(time.perf_counter() - started)
                outputs.setdefault(name, vectors)
            if repeat == 0:  # wacse and sentence-transformers must agree before their times mean anything
                reference = outputs.get("wacse-torch", outputs["st"])
                agreement = float((reference * outputs["st"]).sum(axis=1).min())
                if agreement <= args.min_agreement:
                    sys.exit(f"wacse and sentence-transformers disagree: lowest cosine {agreement:.6f}")
            if args.st_onnx_python:
                result = st_onnx_round(args, tmp, text, test, repeat)
                for name in ("st-onnx", "st-onnx-int8"):
                    times.setdefault(name, []).append(result["times"][name])
                    peer.setdefault(name, result[name])
                peer.setdefault("times", result["times"])
        test_vectors = {name: embed(tests) for name, (_, embed) in wacse.items()}
        test_vectors["st"] = st(tests)
        for name in ("st-onnx", "st-onnx-int8"):
            if name in peer:
                outputs[name], test_vectors[name] = peer[name]
    report(args, sentences, pairs, times, outputs, test_vectors, export_s, peer.get("times"), agreement)


def report(args, sentences, pairs, times, outputs, test_vectors, export_s, peer_info, agreement) -> None:
    import torch

    best = {name: min(values) for name, values in times.items()}
    reference = outputs.get("wacse-torch", outputs["st"])
    ref_p1 = p_at_1(test_vectors.get("wacse-torch", test_vectors["st"]), pairs)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}, device {args.device}, torch {torch.__version__}")
    print(f"model {args.model}: mean pooling, prompt 'query: ', batch size {args.batch_size}, "
          f"max length {args.max_length}")
    print(f"{len(sentences)} sentences; lowest cosine wacse torch vs sentence-transformers {agreement:.6f}; "
          f"P@1 on {sum(len(r) for r in pairs.values())} held-out ui pairs ({', '.join(pairs)})")
    print("export (s, once per model): " + ", ".join(f"{k} {v:.1f}" for k, v in export_s.items() if k != "torch")
          + (f"; sentence-transformers onnx+int8 {peer_info['export_s']}" if peer_info and peer_info.get("export_s")
             else ""))
    if peer_info:
        print(f"sentence-transformers ONNX peer: {peer_info['versions']}, quantization config {args.st_quantization}")
    print("runner\tbest_s\tsentences_per_s\tvs_st_encode\tmin_cos_to_fp32\tP@1\tdelta_P@1\tall_runs_s")
    for name in times:
        cos = float((outputs[name] * reference).sum(axis=1).min())
        p1 = p_at_1(test_vectors[name], pairs)
        runs = " ".join(f"{t:.2f}" for t in times[name])
        print(f"{LABELS[name]}\t{best[name]:.2f}\t{len(sentences) / best[name]:.1f}\t{best['st'] / best[name]:.2f}\t"
              f"{cos:.5f}\t{p1:.4f}\t{p1 - ref_p1:+.4f}\t{runs}")
    if "wacse-onnx-int8" in best:
        print(f"onnx-int8 vs sentence-transformers encode: {best['st'] / best['wacse-onnx-int8']:.2f}x (target >= 2.0)")
        if "st-onnx-int8" in best:
            print(f"onnx-int8 vs sentence-transformers int8 ONNX: "
                  f"{best['st-onnx-int8'] / best['wacse-onnx-int8']:.2f}x (target >= 1.0)")


if __name__ == "__main__":
    main()
