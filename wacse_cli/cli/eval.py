"""``wacse eval``: retrieval accuracy, mining F1 and STS correlation (and alignment error rate)."""
from __future__ import annotations

import math
import time
from typing import Annotated, Optional

import typer

from . import options as opt
from .common import echo_json, load_model, local, note, report_errors
from .help import command_options

RetrievalLangs = opt.langs_option("needed only for a model with a language embedding (else they name the results)")

eval_app = typer.Typer(
    help="Evaluate an encoder (retrieval, mining, sts) or word alignments (align).",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@eval_app.command("retrieval", **command_options("retrieval"))
@report_errors
def retrieval(
    files: Annotated[Optional[list[str]], typer.Argument(
        metavar="FILE", show_default=False,
        help="Parallel text files (en-jv.tsv ...), or multi-way files with a '#langs en kk ka' header (every pair).")
    ] = None,
    model: opt.Model = None,
    pooling: opt.Pooling = None,
    prefix: opt.Prefix = None,
    max_length: opt.MaxLength = None,
    batch_size: opt.BatchSize = 64,
    device: opt.Device = "auto",
    langs: RetrievalLangs = None,
    src: opt.Src = None,
    tgt: opt.Tgt = None,
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", metavar="FILE", help="Write MTEB-shaped results JSON here.")] = None,
    record: Annotated[
        bool, typer.Option("--record", help="Also store the results in the --model folder, for its model card.")
    ] = False,
    on_bad_line: opt.OnBadLine = "error",
    json_out: opt.Json = False,
) -> None:
    """Tatoeba-style P@1: each sentence retrieves the most cosine-similar one of the other side.

    A multi-way file is scored for every pair of its languages, over the rows where both cells exist.
    """
    from ..card import check_recordable, record_eval_results
    from ..errors import UsageError
    from ..evaluate import bitext_retrieval
    from ..io import check_src_tgt, read_bitexts, read_parallel, usable
    from ..model import WACSE_FILE
    from ..outputs import check_file_writable, check_paths

    check_src_tgt(src, tgt)
    if not files and not src:
        raise UsageError("no parallel text given", hint="pass files like en-jv.tsv, or --src a.en --tgt a.jv")
    if record:
        check_file_writable(str(check_recordable(model, pooling=pooling, prefix=prefix, max_length=max_length)
                                / WACSE_FILE))
    check_paths([*(files or []), src, tgt, local(model)], [output])
    need_langs = has_lang_embedding(model)
    texts = read_bitexts(files or [], langs=langs, on_bad_line=on_bad_line, need_langs=need_langs)
    if src:
        texts.append(read_parallel(src=src, tgt=tgt, langs=langs, on_bad_line=on_bad_line, need_langs=need_langs))
    texts = [usable(text, 2, "retrieval needs at least 2 pairs") for text in texts]
    encoder = load_model(model, pooling, prefix, max_length, device)
    started = time.time()
    subsets = bitext_retrieval(encoder, texts, batch_size=batch_size, max_length=max_length)
    average = sum(s["main_score"] for s in subsets) / len(subsets)
    result = {
        "task_name": "WacseBitextRetrieval",
        "dataset_revision": None,
        "mteb_version": None,
        "evaluation_time": round(time.time() - started, 3),
        "scores": {"test": subsets},
        "average_main_score": average,
        "model": {"name": model, "pooling": encoder.settings.pooling, "prefix": encoder.settings.prefix,
                  "max_length": min(max_length or encoder.settings.max_length, encoder.model_max_length)},
        "scoring": "P@1 (Tatoeba protocol): argmax cosine over the whole other side, both directions, mean of the two",
    }
    if output:
        _write_json(output, result)
    if record:
        record_eval_results(model, result)
    if json_out:
        echo_json(result)
        return
    for s in subsets:
        if s["duplicates"]["src"] or s["duplicates"]["tgt"]:
            note(f"{s['file']} ({s['hf_subset']}): {s['duplicates']['src']} source and {s['duplicates']['tgt']} target "
                 "sentences repeat another; retrieving any copy of the gold sentence counts as a hit")
    skipped = sum({t.name: len(t.skipped) for t in texts}.values())
    if skipped:
        note(f"{skipped} bad input line(s) skipped (--on-bad-line skip)")
    typer.echo("file\tpair\tpairs\tsrc2tgt\ttgt2src\tmean")
    for s in subsets:
        typer.echo(f"{s['file']}\t{s['hf_subset']}\t{s['n_pairs']}\t{s['accuracy_src2tgt']:.4f}\t"
                   f"{s['accuracy_tgt2src']:.4f}\t{s['main_score']:.4f}")
    if len(subsets) > 1:
        typer.echo(f"average\t\t\t\t\t{average:.4f}")


def has_lang_embedding(model: str | None) -> bool:
    """Whether ``model`` stores a language embedding (then the languages change its vectors)."""
    from ..model import saved_settings

    return bool(model) and saved_settings(model)[0].lang_embedding


def _write_json(path: str, data) -> None:
    import json

    from ..io import atomic_output

    with atomic_output(path) as handle:
        handle.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@eval_app.command("mining", **command_options("mining"))
@report_errors
def mining(
    source: Annotated[str, typer.Argument(metavar="SOURCE", help="BUCC source file: id<TAB>sentence.")],
    target: Annotated[str, typer.Argument(metavar="TARGET", help="BUCC target file: id<TAB>sentence.")],
    gold: Annotated[str, typer.Argument(metavar="GOLD", help="Gold pairs: source_id<TAB>target_id.")],
    threshold: Annotated[Optional[float], typer.Option(metavar="MARGIN", help="Use this margin threshold instead of choosing one on a dev part.")] = None,
    dev_fraction: Annotated[float, typer.Option(metavar="SHARE", help="Share of source ids used to choose the threshold.")] = 0.5,
    neighbours: Annotated[int, typer.Option("-k", metavar="K", help="Neighbours for the margin.")] = 4,
    model: opt.Model = None,
    pooling: opt.Pooling = None,
    prefix: opt.Prefix = None,
    max_length: opt.MaxLength = None,
    batch_size: opt.BatchSize = 64,
    device: opt.Device = "auto",
    on_bad_line: opt.OnBadLine = "error",
    json_out: opt.Json = False,
) -> None:
    """BUCC-style mining: precision, recall and F1 of margin-mined pairs."""
    from ..embed import encode
    from ..errors import UsageError
    from ..evaluate import check_mining_gold, mining_scores
    from ..io import read_gold_pairs, read_id_sentences
    from ..outputs import check_paths
    from ..search import mine as run_mine

    if not 0 < dev_fraction < 1:
        raise UsageError(f"--dev-fraction must be between 0 and 1, not {dev_fraction}")
    if threshold is not None and not math.isfinite(threshold):
        raise UsageError(f"--threshold must be a finite number, not {threshold}")
    check_paths([source, target, gold, local(model)])
    src_ids, src_sents = read_id_sentences(source, on_bad_line)
    tgt_ids, tgt_sents = read_id_sentences(target, on_bad_line)
    gold_pairs = read_gold_pairs(gold, set(src_ids), set(tgt_ids), on_bad_line)
    if threshold is None:
        check_mining_gold(gold_pairs, dev_fraction, gold)
    encoder = load_model(model, pooling, prefix, max_length, device)
    kw = {"batch_size": batch_size, "max_length": max_length}
    src_vecs = encode(encoder, src_sents, desc="source", **kw)
    tgt_vecs = encode(encoder, tgt_sents, desc="target", **kw)
    mined = run_mine(src_vecs, tgt_vecs, k=neighbours, device=encoder.device)
    scored = [(p.score, (src_ids[p.src], tgt_ids[p.tgt])) for p in mined]
    result = mining_scores(scored, gold_pairs, threshold=threshold, dev_fraction=dev_fraction)
    if json_out:
        echo_json(result)
        return
    found = result["threshold"]
    chosen = "none (no gold pair found on the dev part)" if found is None else f"{found:.4f}"
    typer.echo(f"precision\t{result['precision']:.4f}\nrecall\t{result['recall']:.4f}\n"
               f"f1\t{result['f1']:.4f}\nthreshold\t{chosen}")


@eval_app.command("sts", **command_options("sts"))
@report_errors
def sts(
    pairs: Annotated[str, typer.Argument(metavar="FILE", help="sentence1<TAB>sentence2<TAB>score lines.")],
    model: opt.Model = None,
    pooling: opt.Pooling = None,
    prefix: opt.Prefix = None,
    max_length: opt.MaxLength = None,
    batch_size: opt.BatchSize = 64,
    device: opt.Device = "auto",
    on_bad_line: opt.OnBadLine = "error",
    json_out: opt.Json = False,
) -> None:
    """Spearman correlation x 100 between cosine similarity and gold scores."""
    from ..embed import encode
    from ..evaluate import sts_spearman
    from ..io import read_scored_pairs
    from ..outputs import check_paths

    check_paths([pairs, local(model)])
    sentence_pairs, gold = read_scored_pairs(pairs, on_bad_line)
    encoder = load_model(model, pooling, prefix, max_length, device)
    kw = {"batch_size": batch_size, "max_length": max_length}
    first = encode(encoder, [p[0] for p in sentence_pairs], desc="sentence1", **kw)
    second = encode(encoder, [p[1] for p in sentence_pairs], desc="sentence2", **kw)
    value = sts_spearman(first, second, gold)
    if json_out:
        echo_json({"spearman": value, "pairs": len(gold)})
        return
    typer.echo(f"spearman\t{value:.2f}")


@eval_app.command("align", **command_options("eval-align"))
@report_errors
def align_links(
    predicted: Annotated[str, typer.Argument(metavar="PREDICTED", help="Predicted links: Pharaoh i-j lines, or wacse align --format jsonl.")],
    gold: Annotated[str, typer.Option(
        "--gold", metavar="FILE", help="Gold links: Pharaoh i-j (sure) and ipj (possible) lines, or src<TAB>tgt<TAB>links lines.")],
    gold_one_index: Annotated[bool, typer.Option("--gold-one-index", help="Gold word indices start at 1.")] = False,
    json_out: opt.Json = False,
) -> None:
    """Precision, recall, F1 and alignment error rate (AER) of word alignments against gold links."""
    from ..align.store import check_link_files, read_link_rows
    from ..evaluate import alignment_scores
    from ..outputs import check_paths

    check_paths([predicted, gold])
    pred_rows, gold_rows = read_link_rows(predicted), read_link_rows(gold, one_index=gold_one_index)
    check_link_files(pred_rows, gold_rows, predicted, gold)
    links = {(n, i, j) for n, row in enumerate(pred_rows) for i, j in row.sure | row.possible}
    sure = {(n, i, j) for n, row in enumerate(gold_rows) for i, j in row.sure}
    possible = {(n, i, j) for n, row in enumerate(gold_rows) for i, j in row.possible}
    result = alignment_scores(links, sure, possible)
    if json_out:
        echo_json({**result, "lines": len(gold_rows)})
        return
    typer.echo(f"precision\t{result['precision']:.4f}\nrecall\t{result['recall']:.4f}\n"
               f"f1\t{result['f1']:.4f}\naer\t{result['aer']:.4f}")
