#!/usr/bin/env python3
"""Training throughput and peak memory against batch size: GradCache against a plain full-batch step.

Each configuration runs in its own process (so its peak memory is its own): load the model, one
warm-up step, then ``--steps`` timed steps of ``wacse_cli.gradcache.train_step``, the function
behind ``wacse train``, on real sentence pairs from ``../shared/data/ui`` (one aligned word pair
per example, as training draws them; the diagonal link, since the cost does not depend on which).
The peer is the same objective in one plain pass over the whole batch (``chunk_size = batch``),
what a trainer without gradient caching does: its memory grows with the batch, GradCache's with
the chunk. Peak memory is the process's peak resident set on a CPU, ``max_memory_allocated`` on a
GPU. With ``--peak-tflops`` (the device's dense bf16 peak, e.g. 989 for an H100 SXM) it prints the
model-FLOPs utilisation, 6 x non-embedding parameters x tokens per second / peak; GradCache's
extra forward pass is not counted as model FLOPs.

usage: python benchmarks/train.py --model ../e5-small [--batches 64,256,1024] [--chunk-size 64]
           [--plain-max 256] [--objective wacse|tr] [--max-length 32] [--steps 1] [--device auto]
       python benchmarks/train.py --random-xlmr-base --tokenizer ../e5-small --device cuda \\
           --batches 1024 --chunk-size 256 --plain-max 0 --peak-tflops 989 --steps 5
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def real_pairs(n: int) -> list[tuple[str, str, str]]:
    """(src, tgt, lang) from the shared UI-string bitext, cycled to ``n`` pairs."""
    pairs = []
    for path in sorted((ROOT.parent / "shared" / "data" / "ui").glob("en-*.tsv")):
        lang = path.stem.split("-")[1]
        pairs += [(*line.split("\t")[:2], lang) for line in path.read_text(encoding="utf-8").splitlines()]
    return [pairs[i % len(pairs)] for i in range(n)]


def random_xlmr_base(tokenizer: str, folder: Path) -> str:
    """XLM-R base's shape with random weights (speed needs no trained weights), and an XLM-R tokenizer."""
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForMaskedLM

    config = XLMRobertaConfig(vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                              intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1)
    XLMRobertaForMaskedLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer).save_pretrained(folder)
    return str(folder)


def one_configuration(args) -> dict:
    import numpy as np
    import torch

    from wacse_cli.data import Example, encode_examples, make_batch
    from wacse_cli.gradcache import WacseObjective, train_step
    from wacse_cli.model import load_encoder, resolve_device
    from wacse_cli.recipe import Losses
    from wacse_cli.train import autocast_dtype

    device = str(resolve_device(args.device))
    wacse = args.objective == "wacse"
    encoder = load_encoder(args.model, pooling="mean", prefix="query: " if args.prefix else "", device=device,
                           with_mlm_head=wacse)
    encoder.backbone.get_input_embeddings().weight.requires_grad_(False)
    encoder.train()
    weights = Losses(tr=0.8, awp=0.1, wtr=0.1) if wacse else Losses(tr=1.0, awp=0.0, wtr=0.0)
    objective = WacseObjective(encoder, weights, autocast=autocast_dtype("auto", encoder.device))
    examples = [Example(s, t, "en", lang, [(0, 0)] if wacse else []) for s, t, lang in real_pairs(args.batch)]
    langs = sorted({e.tgt_lang for e in examples} | {"en"})
    encoded = encode_examples(examples, encoder.tokenizer, "query: " if args.prefix else "", args.max_length, langs)
    rng = np.random.default_rng(0)
    batch = make_batch(encoded, encoder.tokenizer.pad_token_id, rng).to(encoder.device)
    warm = make_batch(encoded[:min(args.chunk, args.batch)], encoder.tokenizer.pad_token_id, rng).to(encoder.device)
    optimizer = torch.optim.AdamW([p for p in encoder.parameters() if p.requires_grad], lr=1e-5)

    def step(b):
        optimizer.zero_grad(set_to_none=True)
        train_step(objective, b, args.chunk)
        optimizer.step()

    step(warm)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(args.steps):
        step(batch)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / args.steps
    if device.startswith("cuda"):
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tokens = int(batch.x.ids.numel() + batch.y.ids.numel())
    non_embedding = sum(p.numel() for n, p in encoder.backbone.named_parameters() if "embeddings" not in n)
    row = {"batch": args.batch, "chunk": args.chunk, "mode": "plain" if args.chunk >= args.batch else "gradcache",
           "step_s": round(seconds, 3), "pairs_per_s": round(args.batch / seconds, 1),
           "tokens_per_s": round(tokens / seconds), "peak_mib": round(peak_mib), "device": device}
    if args.peak_tflops:
        row["mfu"] = round(6 * non_embedding * tokens / seconds / (args.peak_tflops * 1e12), 4)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT.parent / "e5-small"))
    ap.add_argument("--random-xlmr-base", action="store_true", help="XLM-R base's shape, random weights")
    ap.add_argument("--tokenizer", default=str(ROOT.parent / "e5-small"), help="for --random-xlmr-base")
    ap.add_argument("--batches", default="64,256,1024")
    ap.add_argument("--chunk-size", type=int, default=64)
    ap.add_argument("--plain-max", type=int, default=256, help="largest batch for the plain full-batch peer")
    ap.add_argument("--objective", choices=["wacse", "tr"], default="wacse")
    ap.add_argument("--max-length", type=int, default=32)
    ap.add_argument("--no-prefix", dest="prefix", action="store_false", help="no 'query: ' prefix (non-e5 models)")
    ap.add_argument("--steps", type=int, default=1, help="timed steps per configuration")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, for MFU")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", nargs=2, type=int, metavar=("BATCH", "CHUNK"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        args.batch, args.chunk = args.one
        print(json.dumps(one_configuration(args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.random_xlmr_base:
            args.model = random_xlmr_base(args.tokenizer, Path(tmp) / "xlmr-base-random")
        rows = []
        for batch in [int(b) for b in args.batches.split(",")]:
            configs = [(batch, args.chunk_size)] + ([(batch, batch)] if batch <= args.plain_max and batch > args.chunk_size else [])
            for b, c in configs:
                rows.append(run_child(args, b, c))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    keys = ["batch", "chunk", "mode", "step_s", "pairs_per_s", "tokens_per_s", "peak_mib"] + (["mfu"] if args.peak_tflops else [])
    print("\t".join(keys))
    for row in rows:
        print("\t".join(str(row[k]) for k in keys))
    plain = {r["batch"]: r for r in rows if r["mode"] == "plain"}
    for row in rows:
        if row["mode"] == "gradcache" and row["batch"] in plain:
            p = plain[row["batch"]]
            print(f"batch {row['batch']}: GradCache / plain: speed {row['pairs_per_s'] / p['pairs_per_s']:.2f}x, "
                  f"peak memory {row['peak_mib'] / p['peak_mib']:.2f}x")


def run_child(args, batch: int, chunk: int) -> dict:
    command = [sys.executable, __file__, "--one", str(batch), str(chunk), "--model", args.model, "--objective",
               args.objective, "--max-length", str(args.max_length), "--steps", str(args.steps), "--device", args.device]
    command += ["--peak-tflops", str(args.peak_tflops)] if args.peak_tflops else []
    command += [] if args.prefix else ["--no-prefix"]
    out = subprocess.run(command, check=True, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
