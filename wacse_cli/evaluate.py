"""Evaluation metrics, each on plain arrays so that they can be checked by hand.

- Tatoeba-style retrieval: for every sentence, the argmax cosine over the whole other side
  (ties go to the lowest index, as ``argmax`` does); P@1 in both directions and their mean.
- BUCC-style mining: precision, recall and F1 of mined pairs against gold pairs, with the
  threshold chosen for the best F1 on a dev part.
- STS: Spearman's rank correlation (ties get their average rank) x 100.
"""
from __future__ import annotations

import hashlib
import math
import unicodedata
from collections import Counter
from dataclasses import dataclass

import numpy as np

from .errors import UsageError, WacseError
from .search import TILE, to_tensor


def nearest(queries: np.ndarray, corpus: np.ndarray, *, device="cpu", tile: int = TILE) -> np.ndarray:
    """Index of the most cosine-similar corpus row for each query (first index on ties)."""
    out = np.zeros(len(queries), dtype=np.int64)
    c = to_tensor(corpus, device)
    for start in range(0, len(queries), tile):
        sims = to_tensor(queries[start:start + tile], device) @ c.T
        out[start:start + len(sims)] = sims.argmax(dim=1).cpu().numpy()
    return out


def retrieval_accuracy(src: np.ndarray, tgt: np.ndarray, *, device="cpu", src_texts: list[str] | None = None,
                       tgt_texts: list[str] | None = None) -> dict[str, float]:
    """P@1 of src->tgt and tgt->src retrieval where row i of each side is the pair i.

    With the sentences, retrieving another copy of the gold sentence (the same text: test sets
    repeat "OK" and "Cancel") is a hit too; their vectors are equal, so which copy wins is a tie.
    """
    s2t = hit_rate(nearest(src, tgt, device=device), tgt_texts)
    t2s = hit_rate(nearest(tgt, src, device=device), src_texts)
    return {"src2tgt": s2t, "tgt2src": t2s, "mean": (s2t + t2s) / 2}


def hit_rate(found: np.ndarray, texts: list[str] | None = None) -> float:
    """Share of rows i whose retrieved row is i, or (given the texts) has the text of row i."""
    hits = found == np.arange(len(found))
    if texts is not None:
        hits |= np.array([texts[f] == texts[i] for i, f in enumerate(found.tolist())], dtype=bool)
    return float(hits.mean())


def duplicates(texts: list[str]) -> int:
    """How many sentences repeat an earlier one exactly."""
    return len(texts) - len(set(texts))


# ----------------------------------------------------------------------------- mining (BUCC)


@dataclass
class MiningScores:
    precision: float
    recall: float
    f1: float
    threshold: float


def prf(predicted: set, gold: set) -> tuple[float, float, float]:
    tp = len(predicted & gold)
    p = tp / len(predicted) if predicted else 0.0
    r = tp / len(gold) if gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def best_threshold(scored: list[tuple[float, tuple]], gold: set) -> MiningScores:
    """The threshold (accept score >= t) with the best F1 over candidates sorted best first."""
    best = MiningScores(0.0, 0.0, 0.0, float("inf"))
    tp = 0
    for i, (score, pair) in enumerate(scored):
        tp += pair in gold
        if i + 1 < len(scored) and scored[i + 1][0] == score:
            continue  # a threshold cannot split equal scores
        p, r = tp / (i + 1), (tp / len(gold) if gold else 0.0)
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        if f1 > best.f1:
            best = MiningScores(p, r, f1, score)
    return best


def dev_part(source_id: str, fraction: float) -> bool:
    """A fixed split of source ids: True for the part used to choose the threshold."""
    digest = hashlib.sha256(source_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def check_mining_gold(gold: set, dev_fraction: float, path: str) -> None:
    """Choosing a threshold needs gold pairs on both sides of the dev split (ids alone decide it)."""
    dev = sum(dev_part(g[0], dev_fraction) for g in gold)
    for count, part in ((dev, f"the dev part ({dev_fraction:.0%} of source ids) that chooses the threshold"),
                        (len(gold) - dev, "the rest, which is scored")):
        if count == 0:
            raise UsageError(f"none of the {len(gold)} gold pairs falls in {part}", where=path,
                             hint="pass --threshold to score every pair at a fixed margin, or a larger gold file")


def mining_scores(scored: list[tuple[float, tuple[str, str]]], gold: set, *, threshold: float | None = None,
                  dev_fraction: float = 0.5) -> dict:
    """P/R/F1 of mined (score, (src_id, tgt_id)) pairs sorted best first.

    With ``threshold``, every pair scoring at least that is accepted and all gold is used.
    Without, the threshold with the best F1 on the dev part of the source ids is applied to the
    rest, and the scores are those of the rest.
    """
    if threshold is not None:
        p, r, f = prf({pair for s, pair in scored if s >= threshold}, gold)
        return {"precision": p, "recall": r, "f1": f, "threshold": threshold, "method": "given threshold"}
    dev_gold = {g for g in gold if dev_part(g[0], dev_fraction)}
    dev = [(s, pair) for s, pair in scored if dev_part(pair[0], dev_fraction)]
    chosen = best_threshold(dev, dev_gold).threshold
    test_gold = gold - dev_gold
    test = {pair for s, pair in scored if not dev_part(pair[0], dev_fraction) and s >= chosen}
    p, r, f = prf(test, test_gold)
    return {
        "precision": p, "recall": r, "f1": f, "threshold": chosen if math.isfinite(chosen) else None,
        "method": f"threshold with the best F1 on a dev part ({dev_fraction:.0%} of source ids), scored on the rest",
        "dev_pairs": len(dev_gold), "test_pairs": len(test_gold),
    }


# ----------------------------------------------------------------------------- STS


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing the mean of the ranks they span."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(a, b) -> float:
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denom) if denom else 0.0


def sts_spearman(vec1: np.ndarray, vec2: np.ndarray, gold: list[float]) -> float:
    cosines = (vec1.astype(np.float64) * vec2.astype(np.float64)).sum(1)
    if np.ptp(cosines) == 0:
        raise WacseError("the model gives every pair the same cosine, so Spearman's correlation is undefined",
                         hint="check the model and its --pooling")
    return 100 * spearman(cosines, gold)


# ----------------------------------------------------------------------------- MTEB-shaped output

_SCRIPTS = {
    "LATIN": "Latn", "CYRILLIC": "Cyrl", "GREEK": "Grek", "ARABIC": "Arab", "HEBREW": "Hebr",
    "GEORGIAN": "Geor", "ARMENIAN": "Armn", "DEVANAGARI": "Deva", "BENGALI": "Beng", "GURMUKHI": "Guru",
    "GUJARATI": "Gujr", "ORIYA": "Orya", "TAMIL": "Taml", "TELUGU": "Telu", "KANNADA": "Knda",
    "MALAYALAM": "Mlym", "SINHALA": "Sinh", "THAI": "Thai", "LAO": "Laoo", "TIBETAN": "Tibt",
    "MYANMAR": "Mymr", "KHMER": "Khmr", "HANGUL": "Hang", "HIRAGANA": "Jpan", "KATAKANA": "Jpan",
    "CJK": "Hani", "ETHIOPIC": "Ethi", "MONGOLIAN": "Mong", "THAANA": "Thaa", "SYRIAC": "Syrc",
}


def dominant_script(sentences: list[str], sample: int = 200) -> str:
    """ISO 15924 code of the script most letters of the sentences are written in."""
    counts: Counter = Counter()
    for sentence in sentences[:sample]:
        for ch in sentence:
            if ch.isalpha():
                first = unicodedata.name(ch, "").split(" ")[0]
                counts[_SCRIPTS.get(first, "Zyyy")] += 1
    return counts.most_common(1)[0][0] if counts else "Zyyy"


def mteb_subset(pair_name: str, langs_with_scripts: list[str], scores: dict[str, float], n: int) -> dict:
    return {
        "hf_subset": pair_name,
        "languages": langs_with_scripts,
        "main_score": scores["mean"],
        "accuracy": scores["mean"],
        "accuracy_src2tgt": scores["src2tgt"],
        "accuracy_tgt2src": scores["tgt2src"],
        "n_pairs": n,
    }


def bitext_retrieval(encoder, texts: list, *, batch_size: int = 64, max_length: int | None = None,
                     progress: bool = True) -> list[dict]:
    """``wacse eval retrieval``'s subsets: P@1 both directions for each ParallelText, MTEB-shaped."""
    from .embed import encode
    from .io import iso639_3

    subsets = []
    for text in texts:
        pairs = [text.pairs[i] for i in text.kept()]
        kw = {"batch_size": batch_size, "max_length": max_length, "progress": progress}
        src, tgt = (encode(encoder, [p[side] for p in pairs], lang=_model_lang(encoder, text.langs[side]),
                           desc=f"{text.pair_name} {name}", **kw) for side, name in ((0, "src"), (1, "tgt")))
        sides = [[p[0] for p in pairs], [p[1] for p in pairs]]
        scores = retrieval_accuracy(src, tgt, device=encoder.device, src_texts=sides[0], tgt_texts=sides[1])
        languages = [f"{iso639_3(text.src_lang)}-{dominant_script(sides[0])}",
                     f"{iso639_3(text.tgt_lang)}-{dominant_script(sides[1])}"]
        subsets.append({**mteb_subset(text.pair_name, languages, scores, len(pairs)), "file": text.name,
                        "skipped": len(text.skipped),
                        "duplicates": {"src": duplicates(sides[0]), "tgt": duplicates(sides[1])}})
    return subsets


def _model_lang(encoder, code: str) -> str | None:
    """The language to embed with: only when the model has an embedding for it."""
    return code if encoder.lang_embedding is not None and code in encoder.settings.languages else None



# ----------------------------------------------------------------------------- word alignment


def alignment_scores(predicted: set, sure: set, possible: set = frozenset()) -> dict:
    """Precision, recall, F1 and alignment error rate of links (any hashable, e.g. (line, i, j)).

    Sure links are also possible (P includes S). Och & Ney (2003):
    precision = |A∩P| / |A|, recall = |A∩S| / |S|, AER = 1 - (|A∩S| + |A∩P|) / (|A| + |S|).
    """
    possible = set(possible) | set(sure)
    a_s, a_p = len(predicted & sure), len(predicted & possible)
    precision = a_p / len(predicted) if predicted else 0.0
    recall = a_s / len(sure) if sure else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    total = len(predicted) + len(sure)
    aer = 1 - (a_s + a_p) / total if total else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "aer": aer,
            "predicted": len(predicted), "sure": len(sure), "possible": len(possible)}


def diagonal_links(n_src: int, n_tgt: int) -> list[tuple[int, int]]:
    """The diagonal baseline: source word i to target word floor((i + 0.5) * n_tgt / n_src)."""
    if not n_src or not n_tgt:
        return []
    return [(i, min(n_tgt - 1, int((i + 0.5) * n_tgt / n_src))) for i in range(n_src)]
