"""``wacse filter``: score every pair of a bitext and keep the translations.

1. Cheap rules (:mod:`wacse_cli.filter_rules`) drop malformed, empty, copied, wrongly scripted,
   number-mismatched, oddly long or short and duplicated pairs, each with its reason.
2. The encoder embeds both sides of the remaining pairs (in chunks, cached), and each pair gets
   its cosine and its ratio margin (Artetxe & Schwenk 2019) with k nearest neighbours on both
   sides searched over the whole bitext (exactly, or with FAISS where that would be slow).
3. Negatives made from the input (shuffled and shifted targets) calibrate the score into a
   probability of being a translation (:mod:`wacse_cli.calibrate`); the pairs above the lowest
   cut whose estimated precision reaches the target are kept, unless a threshold is given.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .calibrate import Calibrations, Cut, choose_cut, cut_at, fit_by_kind, negative_pairs
from .embed import cached_encode
from .filter_rules import REASONS, RuleSettings, apply_rules
from .index import choose_index, index_for
from .io import ParallelText, atomic_output
from .search import margin, neighbourhood_means, pair_cosines

SCORES = ("margin", "cosine")
BELOW_CUT = "score"  # the reason of a pair the rules kept and the score dropped
LOW_RECALL = 0.8  # below this estimated recall the summary says what the precision target costs


@dataclass
class FilterSettings:
    precision: float = 0.95  # target precision of the kept pairs (automatic cut)
    threshold: float | None = None  # a fixed cut on the score instead
    score: str = "margin"
    neighbours: int = 4
    index: str = "auto"
    seed: int = 0
    rules: RuleSettings = field(default_factory=RuleSettings)


@dataclass
class FilterResult:
    reasons: list[str | None]  # per input line: why it was dropped, or None when kept
    scores: np.ndarray  # per input line; nan where the rules dropped it before scoring
    cosines: np.ndarray
    probs: np.ndarray  # probability of a translation; 0 where a rule dropped the pair
    cut: Cut
    calibration: Calibrations
    automatic: bool
    index: dict = field(default_factory=dict)

    @property
    def kept(self) -> list[int]:
        return [i for i, reason in enumerate(self.reasons) if reason is None]

    def counts(self) -> dict[str, int]:
        found = Counter(reason for reason in self.reasons if reason is not None)
        return {reason: found[reason] for reason in (*REASONS, BELOW_CUT) if found[reason]}


def rule_reasons(text: ParallelText, settings: RuleSettings) -> list[str | None]:
    """The rules' reason per line; a line the reader skipped is ``empty`` or ``malformed``."""
    skipped = dict(text.skipped)
    reasons = apply_rules(text.pairs, text.src_lang, text.tgt_lang, settings)
    for i, pair in enumerate(text.pairs):
        if pair is None and "empty" in skipped.get(i + 1, ""):
            reasons[i] = "empty"
    return reasons


def embed_pairs(encoder, model_name: str, pairs: list[tuple[str, str]], *, src_lang: str | None,
                tgt_lang: str | None, cache: bool = True, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    src = cached_encode(encoder, model_name, [p[0] for p in pairs], use_cache=cache, lang=src_lang,
                        desc="source", **kwargs)
    tgt = cached_encode(encoder, model_name, [p[1] for p in pairs], use_cache=cache, lang=tgt_lang,
                        desc="target", **kwargs)
    return src, tgt


def semantic_scores(src: np.ndarray, tgt: np.ndarray, settings: FilterSettings, *, device="cpu",
                    progress: bool = True):
    """(cosines, scores, negatives' scores, negatives' kinds, index report) of the pairs ``(src[i], tgt[i])``."""
    k = min(settings.neighbours, len(src))
    kind, _ = choose_index(settings.index, 2 * len(src) * len(src), device)
    tgt_index, to_tgt = index_for(tgt, src, k, kind, device=device, progress=progress)
    src_index, to_src = index_for(src, tgt, k, kind, device=device, progress=progress)
    src_mean, tgt_mean = neighbourhood_means(src, tgt, k, device=device, src_index=src_index, tgt_index=tgt_index)
    rows = np.arange(len(src))
    cos = pair_cosines(src, tgt, rows, rows, device=device)
    neg_src, neg_tgt, kinds = negative_pairs(len(src), settings.seed)
    neg_cos = pair_cosines(src, tgt, neg_src, neg_tgt, device=device)
    if settings.score == "cosine":
        scores, negatives = cos, neg_cos
    else:
        scores = margin(cos, src_mean, tgt_mean)
        negatives = margin(neg_cos, src_mean[neg_src], tgt_mean[neg_tgt])
    report = {"kind": kind, "source_to_target_recall": to_tgt.recall, "target_to_source_recall": to_src.recall}
    return cos, scores, negatives, kinds, report


def run_filter(text: ParallelText, encoder, model_name: str, settings: FilterSettings, *, cache: bool = True,
               progress: bool = True, **embed_kwargs) -> FilterResult:
    """Rules, then scores and the calibrated cut, for every line of ``text``."""
    reasons = rule_reasons(text, settings.rules)
    rows = [i for i, reason in enumerate(reasons) if reason is None]
    use_lang = encoder.lang_embedding is not None
    src, tgt = embed_pairs(encoder, model_name, [text.pairs[i] for i in rows], cache=cache, progress=progress,
                           src_lang=text.src_lang if use_lang else None,
                           tgt_lang=text.tgt_lang if use_lang else None, **embed_kwargs)
    return score_and_cut(reasons, src, tgt, settings, device=encoder.device, progress=progress)


def score_and_cut(reasons: list[str | None], src: np.ndarray, tgt: np.ndarray, settings: FilterSettings, *,
                  device="cpu", progress: bool = True) -> FilterResult:
    """Score the pairs the rules kept (``src[j]``, ``tgt[j]``: the j-th line whose reason is None),
    calibrate, and drop those below the cut; ``reasons`` is updated in place."""
    rows = [i for i, reason in enumerate(reasons) if reason is None]
    n = len(reasons)
    scores, cosines, probs = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n)
    if not rows:
        return FilterResult(reasons, scores, cosines, probs, Cut(float("inf"), 0, 1.0, 0.0), Calibrations({}),
                            settings.threshold is None)
    cos, scored, negatives, kinds, report = semantic_scores(src, tgt, settings, device=device, progress=progress)
    calibration = fit_by_kind(scored, negatives, kinds)
    row_probs = calibration.probability(scored)
    if settings.threshold is None:
        cut = choose_cut(scored, row_probs, settings.precision)
    else:
        cut = cut_at(scored, row_probs, settings.threshold)
    scores[rows], cosines[rows], probs[rows] = scored, cos, row_probs
    for i, score in zip(rows, scored.tolist()):
        if score < cut.threshold:
            reasons[i] = BELOW_CUT
    return FilterResult(reasons, scores, cosines, probs, cut, calibration, settings.threshold is None, report)


def write_kept(path: str, text: ParallelText, result: FilterResult) -> None:
    with atomic_output(path) as handle:
        for i in result.kept:
            src, tgt = text.pairs[i]
            handle.write(f"{src}\t{tgt}\n")


def write_scores(path: str, result: FilterResult) -> None:
    """One line per input line: score, probability, keep or drop, reason ('-' where none)."""
    with atomic_output(path) as handle:
        for score, prob, reason in zip(result.scores.tolist(), result.probs.tolist(), result.reasons):
            shown = "-" if np.isnan(score) else f"{score:.6f}"
            handle.write(f"{shown}\t{prob:.4f}\t{'keep' if reason is None else 'drop'}\t{reason or '-'}\n")


def summary(result: FilterResult, settings: FilterSettings) -> dict:
    cut = result.cut
    finite = np.isfinite(cut.threshold)
    return {
        "pairs": len(result.reasons), "kept": len(result.kept), "dropped": len(result.reasons) - len(result.kept),
        "score": settings.score, "threshold": cut.threshold if finite else None,
        "threshold_from": "calibration" if result.automatic else "--threshold",
        "target_precision": settings.precision if result.automatic else None,
        "estimated_precision": round(cut.precision, 4), "estimated_recall": round(cut.recall, 4),
        "estimated_noise_share": round(result.calibration.noise_share, 4),
        "reasons": result.counts(), "index": result.index,
    }


def summary_lines(info: dict) -> list[str]:
    """The summary for people, a few lines on stderr."""
    cut = "none (no cut reaches the target precision)" if info["threshold"] is None else f"{info['threshold']:.4f}"
    lines = [
        f"kept {info['kept']} of {info['pairs']} pairs; {info['score']} cut {cut} ({info['threshold_from']})",
        f"estimated precision {info['estimated_precision']:.3f}, recall {info['estimated_recall']:.3f} "
        f"of the pairs the rules kept; estimated noise among them {info['estimated_noise_share']:.1%}",
    ]
    if info["threshold_from"] == "calibration" and info["estimated_recall"] < LOW_RECALL:
        lines.append(f"reaching precision {info['target_precision']} costs most translations here (estimated recall "
                     f"{info['estimated_recall']:.2f}): the encoder separates them poorly from noise on this data; "
                     "a lower --precision keeps more")
    if info["reasons"]:
        lines.append("dropped: " + ", ".join(f"{reason} {count}" for reason, count in info["reasons"].items()))
    return lines
