"""Approximate nearest neighbours with FAISS, for corpora too large for exact search.

Exact search (:class:`wacse_cli.search.Exact`) stays correct at any size, but it costs
``queries x corpus`` dot products. With ``--index auto`` (the default) it is used up to
:data:`AUTO_PAIRS` of them; beyond that, or when asked by name, a FAISS index finds the candidates:

- ``faiss-flat``: brute force inside FAISS (exact; nothing to build or save),
- ``faiss-ivf``: inverted lists, ``sqrt(n)`` k-means cells of which ``nprobe`` are searched,
- ``faiss-hnsw``: a small-world graph with :data:`HNSW_LINKS` links per vector, searched keeping
  ``ef_search`` candidates.

Vectors are unit length, so FAISS's inner product is the cosine. What an index finds is rescored
exactly afterwards (:func:`wacse_cli.search.rescored_topk`): an approximate index can miss a
neighbour, never misreport a score. How often it misses is measured rather than assumed, as
recall@k against exact search on a sample of queries. IVF and HNSW indexes take time to build, so
they are saved beside the cached corpus embeddings, under the embeddings' cache key plus their
build parameters, and loaded by later runs over the same corpus with the same model.

FAISS is an optional extra (``pip install -e '.[faiss]'``), imported only when an index is used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UsageError
from .progress import progress_bar
from .search import Exact, topk_cosine

INDEXES = ("auto", "exact", "faiss-flat", "faiss-ivf", "faiss-hnsw")
AUTO_PAIRS = {"cpu": 10**10, "cuda": 10**12}  # dot products exact search does in minutes, not hours
RECALL_SAMPLE = 256
HNSW_LINKS = 32
HNSW_EF_CONSTRUCTION = 80
TRAIN_PER_LIST = 64  # k-means training vectors per IVF cell (FAISS wants at least 39)
ADD_BLOCK = 65_536


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def import_faiss(kind: str):
    try:
        import faiss
    except ImportError:
        raise UsageError(
            f"--index {kind} needs FAISS, which is not installed",
            hint="pip install -e '.[faiss]' (or faiss-gpu), or use --index exact",
        ) from None
    return faiss


def check_index(kind: str, nprobe: int = 1, ef_search: int = 1) -> None:
    """Fail before any model work on an unknown ``--index``, or a FAISS one without FAISS."""
    if kind not in INDEXES:
        raise UsageError(f"--index must be one of {', '.join(INDEXES)}, not '{kind}'")
    if nprobe < 1 or ef_search < 1:
        raise UsageError("--nprobe and --ef-search must be at least 1")
    if kind.startswith("faiss"):
        import_faiss(kind)


def choose_index(kind: str, pairs: int, device="cpu") -> tuple[str, str | None]:
    """(the index to use, a note for the user or None); ``auto`` picks by the ``pairs`` of vectors
    exact search would compare."""
    check_index(kind)
    if kind != "auto":
        return kind, None
    limit = AUTO_PAIRS["cuda" if str(device).startswith("cuda") else "cpu"]
    if pairs <= limit:
        return "exact", None
    if not faiss_available():
        return "exact", (f"exact search over {pairs:,} pairs may take a long time; "
                         "pip install -e '.[faiss]' to let --index auto use an approximate index")
    return "faiss-ivf", None


@dataclass
class IndexReport:
    """What was searched and how well: shown on stderr and in ``--json``."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  # where a built index is saved
    loaded: bool = False  # True when it came from the cache rather than being built now
    recall: float | None = None  # recall@k against exact search on a sample of queries
    k: int | None = None
    sample: int | None = None

    def line(self, what: str) -> str:
        details = [f"{key} {value}" for key, value in self.params.items()]
        details.append("loaded from the cache" if self.loaded else "built")
        return (f"{what}: {self.kind} index ({', '.join(details)}): recall@{self.k} {self.recall:.3f} "
                f"against exact search on {self.sample} sampled queries")


class FaissIndex:
    """A FAISS index over ``vectors`` with the same ``topk`` as :class:`wacse_cli.search.Exact`."""

    def __init__(self, index, vectors: np.ndarray, kind: str, params: dict[str, Any], device="cpu"):
        self.index = index
        self.vectors = vectors
        self.kind = kind
        self.params = params
        self.device = device

    def topk(self, queries: np.ndarray, k: int):
        """(scores, indices), best first; rows an approximate index leaves short (FAISS marks
        missing hits with -1) are searched exactly instead."""
        k = min(k, len(self.vectors))
        if k == 0 or len(queries) == 0:
            return np.zeros((len(queries), k), dtype=np.float32), np.zeros((len(queries), k), dtype=np.int64)
        if self.kind == "faiss-hnsw":
            self.index.hnsw.efSearch = max(self.params["ef_search"], k)
        scores, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        short = (ids < 0).any(axis=1)
        if short.any():
            scores[short], ids[short] = topk_cosine(queries[short], self.vectors, k, device=self.device)
        return scores, ids.astype(np.int64)


def ivf_lists(n: int) -> int:
    """About sqrt(n) cells, and at least 39 training vectors per cell as FAISS's k-means wants."""
    return max(1, min(round(math.sqrt(n)), n // 39))


def _new_index(faiss, kind: str, dim: int, n: int):
    if kind == "faiss-flat":
        return faiss.IndexFlatIP(dim), {}
    if kind == "faiss-ivf":
        lists = ivf_lists(n)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.min_points_per_centroid = 1  # ivf_lists already asks for enough; below 39 vectors, one cell
        return index, {"lists": lists}
    index = faiss.IndexHNSWFlat(dim, HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    return index, {"links": HNSW_LINKS, "ef_construction": HNSW_EF_CONSTRUCTION}


def _fill(index, vectors: np.ndarray, kind: str, progress: bool) -> None:
    """Train (IVF: k-means on a fixed sample) and add every vector, with a progress bar."""
    if kind == "faiss-ivf":
        rng = np.random.default_rng(0)
        size = min(len(vectors), TRAIN_PER_LIST * index.nlist)
        index.train(np.ascontiguousarray(vectors[np.sort(rng.choice(len(vectors), size, replace=False))]))
    with progress_bar(total=len(vectors), desc=f"building {kind}", unit="vec", disable=not progress, leave=False) as bar:
        for start in range(0, len(vectors), ADD_BLOCK):
            block = np.ascontiguousarray(vectors[start:start + ADD_BLOCK], dtype=np.float32)
            index.add(block)
            bar.update(len(block))


def _load(faiss, path: Path, vectors: np.ndarray):
    """A saved index that matches the vectors, or None (missing, damaged or stale: rebuilt)."""
    if not path.is_file():
        return None
    try:
        index = faiss.read_index(str(path))
    except RuntimeError:
        return None
    return index if index.ntotal == len(vectors) and index.d == vectors.shape[1] else None


def _save(faiss, index, path: Path) -> None:
    from .io import atomic_output

    with atomic_output(str(path), "wb") as handle:
        faiss.write_index(index, faiss.PyCallbackIOWriter(handle.write))


def build_index(vectors: np.ndarray, kind: str, *, cache_stem: str | Path | None = None, nprobe: int = 32,
                ef_search: int = 64, device="cpu", progress: bool = True) -> tuple[Exact | FaissIndex, IndexReport]:
    """An index of ``kind`` over ``vectors`` (unit rows), loaded from ``cache_stem.<params>.faiss``
    when one was saved there, else built (and saved there, for IVF and HNSW)."""
    if kind == "exact":
        return Exact(vectors, device), IndexReport("exact")
    check_index(kind, nprobe, ef_search)
    faiss = import_faiss(kind)
    index, params = _new_index(faiss, kind, vectors.shape[1], len(vectors))
    path = None
    if cache_stem is not None and kind != "faiss-flat":
        tag = "-".join(f"{key}{value}" for key, value in params.items())
        path = Path(f"{cache_stem}.{kind}-{tag}.faiss")
    loaded = _load(faiss, path, vectors) if path is not None else None
    if loaded is not None:
        index = loaded
    else:
        _fill(index, vectors, kind, progress)
        if path is not None:
            _save(faiss, index, path)
    if kind == "faiss-ivf":
        index.nprobe = min(nprobe, index.nlist)
        params["nprobe"] = index.nprobe
    if kind == "faiss-hnsw":
        params["ef_search"] = ef_search
    report = IndexReport(kind, params, str(path) if path else None, loaded is not None)
    return FaissIndex(index, vectors, kind, params, device), report


def recall_at_k(index, queries: np.ndarray, k: int, *, sample: int = RECALL_SAMPLE, seed: int = 0,
                device="cpu") -> tuple[float, int]:
    """(recall@k, queries used): the share of each sampled query's exact top k that ``index`` finds."""
    k = min(k, len(index.vectors))
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(queries), min(sample, len(queries)), replace=False))
    if k == 0 or len(rows) == 0:
        return 1.0, len(rows)
    _, found = index.topk(queries[rows], k)
    _, exact = topk_cosine(queries[rows], index.vectors, k, device=device)
    hits = sum(len(set(a.tolist()) & set(e.tolist())) for a, e in zip(found, exact))
    return hits / exact.size, len(rows)


def index_for(vectors: np.ndarray, queries: np.ndarray, k: int, kind: str,
              **kwargs) -> tuple[Exact | FaissIndex, IndexReport]:
    """:func:`build_index` and, for a FAISS index, its recall@k for ``queries`` on a sample."""
    index, report = build_index(vectors, kind, **kwargs)
    if kind != "exact":
        report.recall, report.sample = recall_at_k(index, queries, k, device=kwargs.get("device", "cpu"))
        report.k = min(k, len(vectors))
    return index, report
