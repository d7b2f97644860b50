#!/usr/bin/env python3
"""How much faster ``wacse align`` is than the obvious way of doing the same work.

1. WSPAlign: wacse's flattened, length-sorted, batched queries (autocast on a GPU) against one
   query at a time through transformers' question-answering pipeline, on the same model and
   sentence pairs, both directions. Target: >= 10x on a GPU; the CPU ratio is reported too.
   transformers 5 removed that pipeline; there the reference calls the model once per query,
   in float32, as the pipeline did, and decodes the span with the same rule.
2. ``--aligner embed`` against the ``simalign`` package (pip install simalign) on the same
   encoder, layer, pairs and matching (IterMax over averaged word vectors, no distortion).
   Target: >= 5x.

Both ratios come from one run. Without WSPAlign weights (offline) the question-answering model
is the encoder with a randomly initialised span head: the cost per query is the same.

usage: python benchmarks/align.py --model ../e5-small --pairs ../shared/data/gold-align/grc-en.tsv
       [--n 20] [--n-embed 200] [--batch-size N] [--device auto|cpu|cuda] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wacse_cli.align import wspalign  # noqa: E402
from wacse_cli.align.embedding import EmbedAligner  # noqa: E402
from wacse_cli.align.words import word_spans  # noqa: E402
from wacse_cli.model import load_encoder, quiet_transformers, resolve_device  # noqa: E402


def read_pairs(path: str, n: int) -> list[tuple[str, str]]:
    rows = Path(path).read_text(encoding="utf-8").splitlines()[:n]
    return [tuple(row.split("\t")[:2]) for row in rows]


def timed(function):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = function()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - started


# ----------------------------------------------------------------------------- WSPAlign


def wspalign_batched(tokenizer, model, pairs, spans, batch_size: int):
    aligner = wspalign.WSPAligner(tokenizer, model, batch_size=batch_size)
    return aligner.align(pairs, spans)


def wspalign_one_by_one(tokenizer, model, pairs, spans, device):
    """The same questions, one at a time: through transformers' question-answering pipeline where it
    exists (transformers < 5), else the same model called once per question (what that pipeline did).
    Returns (links, which reference was used)."""
    ask, reference = _pipeline(tokenizer, model, device), "question-answering pipeline"
    if ask is None:
        ask = _single_query(tokenizer, model, device)
        reference = "one model call per query (transformers 5 has no QA pipeline)"
    out = []
    for (src, tgt), (s_spans, t_spans) in zip(pairs, spans):
        found = ({}, {})
        for direction, (q_text, q_spans, c_text, c_spans) in enumerate(((src, s_spans, tgt, t_spans),
                                                                       (tgt, t_spans, src, s_spans))):
            for w, span in enumerate(q_spans):
                answer = ask(wspalign.question(q_text, span), c_text)
                linked = wspalign.words_inside(answer[:2], c_spans)
                for v in linked:
                    found[direction][(w, v) if direction == 0 else (v, w)] = answer[2] / len(linked)
        out.append(wspalign.combine(*found))
    return out, reference


def _pipeline(tokenizer, model, device):
    from transformers import pipeline

    try:
        qa = pipeline("question-answering", model=model, tokenizer=tokenizer, device=device)
    except (KeyError, ValueError):
        return None

    def ask(question, context):
        answer = qa(question=question, context=context, max_answer_len=wspalign.MAX_SPAN)
        return answer["start"], answer["end"], answer["score"]

    return ask


def _single_query(tokenizer, model, device):
    def ask(question, context):
        enc = tokenizer(question, context, truncation=True, return_offsets_mapping=True, return_tensors="pt")
        offsets = enc.pop("offset_mapping")[0]
        sequence = enc.sequence_ids(0)
        with torch.inference_mode():
            logits = model(**enc.to(device))
        is_context = torch.tensor([[s == 1 for s in sequence]], device=device)
        start, end, score = wspalign.best_spans(logits.start_logits, logits.end_logits, is_context)
        return int(offsets[int(start[0])][0]), int(offsets[int(end[0])][1]), float(score[0])

    return ask


# ----------------------------------------------------------------------------- embed vs simalign


def embed_ours(encoder, pairs, spans, layer: int, batch_size: int):
    aligner = EmbedAligner(encoder, layer=layer, method="itermax", distortion=0.0, batch_size=batch_size)
    return aligner.align(pairs, spans)


def simalign_aligner(model: str, layer: int, device: str):
    from simalign import SentenceAligner

    return SentenceAligner(model=model, token_type="word", matching_methods="i", device=device, layer=layer)


def embed_simalign(aligner, pairs):
    return [aligner.get_word_aligns(src.split(), tgt.split())["itermax"] for src, tgt in pairs]


def agreement(ours, theirs) -> float:
    """Jaccard overlap of the two link sets over all pairs."""
    a = {(n, i, j) for n, links in enumerate(ours) for i, j, *_ in links}
    b = {(n, i, j) for n, links in enumerate(theirs) for i, j, *_ in links}
    return len(a & b) / len(a | b) if a | b else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="encoder folder or id (e.g. ../e5-small)")
    parser.add_argument("--qa-model", help="question-answering model (default: --model with a fresh span head)")
    parser.add_argument("--pairs", required=True, help="src<TAB>tgt lines (a third column is ignored)")
    parser.add_argument("--n", type=int, default=20, help="sentence pairs for the WSPAlign comparison")
    parser.add_argument("--n-embed", type=int, default=200, help="sentence pairs for the embed comparison")
    parser.add_argument("--layer", type=int, default=8)
    parser.add_argument("--batch-size", type=int, help="default: 64 on a GPU, 16 on a CPU (faster there)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    quiet_transformers()
    device = resolve_device(args.device)
    args.batch_size = args.batch_size or (64 if device.type == "cuda" else 16)
    all_pairs = read_pairs(args.pairs, max(args.n, args.n_embed))
    all_spans = [(word_spans(s), word_spans(t)) for s, t in all_pairs]
    pairs, spans = all_pairs[:args.n], all_spans[:args.n]
    report = {"device": str(device), "torch_threads": torch.get_num_threads(), "batch_size": args.batch_size}

    tokenizer, qa_model, _ = wspalign.load_qa_model(args.qa_model or args.model, str(device))
    queries = sum(len(s) + len(t) for s, t in spans)  # one question per word, each direction
    wspalign_batched(tokenizer, qa_model, pairs[:1], spans[:1], args.batch_size)  # warm-up, not timed
    wspalign_one_by_one(tokenizer, qa_model, pairs[:1], spans[:1], device)
    ours, t_ours = timed(lambda: wspalign_batched(tokenizer, qa_model, pairs, spans, args.batch_size))
    (ref, reference), t_ref = timed(lambda: wspalign_one_by_one(tokenizer, qa_model, pairs, spans, device))
    report["wspalign"] = {"pairs": len(pairs), "queries": queries, "batched_s": t_ours, "one_by_one_s": t_ref,
                          "speedup": t_ref / t_ours, "reference": reference, "link_agreement": agreement(ours, ref)}

    encoder = load_encoder(args.model, prefix="", device=str(device))
    pairs, spans = all_pairs[:args.n_embed], all_spans[:args.n_embed]
    embed_ours(encoder, pairs[:2], spans[:2], args.layer, args.batch_size)  # warm-up, not timed
    ours, t_ours = timed(lambda: embed_ours(encoder, pairs, spans, args.layer, args.batch_size))
    try:
        simalign_model = simalign_aligner(args.model, args.layer, str(device))  # loading is not timed, as for ours
        embed_simalign(simalign_model, pairs[:2])
        ref, t_ref = timed(lambda: embed_simalign(simalign_model, pairs))
        report["embed"] = {"pairs": len(pairs), "ours_s": t_ours, "simalign_s": t_ref, "speedup": t_ref / t_ours,
                           "link_agreement": agreement(ours, ref)}
    except ImportError:
        report["embed"] = {"pairs": len(pairs), "ours_s": t_ours, "simalign_s": None,
                           "note": "simalign is not installed: pip install simalign"}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    w, e = report["wspalign"], report["embed"]
    print(f"on {device} ({report['torch_threads']} threads), batch size {args.batch_size}")
    print(f"wspalign  {w['pairs']} pairs, {w['queries']} queries: batched {w['batched_s']:.2f}s, "
          f"one by one {w['one_by_one_s']:.2f}s "
          f"-> {w['speedup']:.1f}x (target 10x on GPU); links agree {w['link_agreement']:.0%}")
    print(f"          reference: {w['reference']}")
    if e.get("simalign_s"):
        print(f"embed     {e['pairs']} pairs: ours {e['ours_s']:.2f}s, simalign {e['simalign_s']:.2f}s "
              f"-> {e['speedup']:.1f}x (target 5x); "
              f"links agree {e['link_agreement']:.0%}")
    else:
        print(f"embed     ours {e['ours_s']:.2f}s; {e['note']}")


if __name__ == "__main__":
    main()
