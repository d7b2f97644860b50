"""Embedding and search at corpus scale: streaming, shards, FAISS indexes and their recall."""
import io
import json
import sys

import numpy as np
import pytest

from wacse_cli.embed import embed_file, encode_lines, open_sentences
from wacse_cli.shards import piece_path
from wacse_cli.model import load_encoder

from .conftest import demo_pairs


def write_lines(path, lines):
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def mixed_sentences(n):
    rows = [s for lang in ("kk", "ka", "jv") for pair in demo_pairs(lang)[:40] for s in pair]
    return rows[:n]


# ----------------------------------------------------------------------------- embed


def test_sharded_embed_and_merge_equal_one_shot(cli, tiny_model, tmp_path):
    src = write_lines(tmp_path / "big.txt", mixed_sentences(37))
    full, merged = tmp_path / "full.npy", tmp_path / "big.npy"
    assert cli("embed", src, "-o", full, "-m", tiny_model, "--batch-size", "5").exit_code == 0
    for i in range(3):
        result = cli("embed", src, "-o", merged, "-m", tiny_model, "--shard", f"{i}/3", "--batch-size", "4")
        assert result.exit_code == 0, result.output
        assert f"embedded lines {37 * i // 3 + 1}-{37 * (i + 1) // 3} of 37" in result.stderr
    assert not merged.exists() and (tmp_path / "big.shard-2-of-3.npy").exists()
    result = cli("embed", src, "-o", merged, "--merge", "3", "--json")  # no model needed to merge
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sentences"] == 37
    np.testing.assert_allclose(np.load(merged), np.load(full), atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.npy", "big.txt", "full.npy"]


def test_streaming_in_small_chunks_equals_in_memory(tiny_model, tmp_path):
    lines = mixed_sentences(23)
    lines[5] = " "  # a bad line, skipped as a zero row
    src = write_lines(tmp_path / "s.txt", lines)
    encoder = load_encoder(tiny_model)
    expected = encode_lines(encoder, [None if i == 5 else s for i, s in enumerate(lines)], progress=False)
    with open_sentences(str(src), "skip") as text:
        assert (text.lines, text.skipped) == (23, [(6, "empty line")])
        summary = embed_file(encoder, text, str(tmp_path / "e.npy"), chunk_lines=4, batch_size=3, progress=False)
        embed_file(encoder, text, str(tmp_path / "part.npy"), rows=(3, 11), chunk_lines=3, progress=False)
    assert (summary.start, summary.end, summary.skipped) == (0, 23, 1)
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), expected, atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "part.npy"), expected[3:11], atol=1e-6)


def test_embed_streams_to_standard_output(cli, tiny_model, tmp_path):
    src = write_lines(tmp_path / "s.txt", mixed_sentences(9))
    result = cli("embed", src, "-o", "-", "-m", tiny_model)
    assert result.exit_code == 0, result.output
    assert cli("embed", src, "-o", tmp_path / "e.npy", "-m", tiny_model).exit_code == 0
    np.testing.assert_allclose(np.load(io.BytesIO(result.stdout_bytes)), np.load(tmp_path / "e.npy"), atol=1e-6)


def test_a_bad_line_far_down_stops_before_the_model_loads(cli, tmp_path):
    src = write_lines(tmp_path / "s.txt", mixed_sentences(30) + ["", "last"])
    result = cli("embed", src, "-o", tmp_path / "e.npy", "-m", "no-such-org/no-such-model")
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"wacse: error: {src}:31: empty line; "
                                     "remove or fill the line, or pass --on-bad-line skip")


def test_shard_and_merge_errors_are_one_line(cli, tiny_model, tmp_path):
    src = write_lines(tmp_path / "s.txt", mixed_sentences(10))
    out = tmp_path / "e.npy"
    for shard in ("3/3", "x", "1/0"):
        result = cli("embed", src, "-o", out, "-m", tiny_model, "--shard", shard)
        assert result.exit_code == 2 and "--shard must be I/N with 0 <= I < N" in result.stderr
    result = cli("embed", src, "-o", out, "--merge", "2")
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"wacse: error: {piece_path(str(out), 0, 2)}: no such piece; "
                                     "run every shard (--shard I/N) before --merge")
    np.save(piece_path(str(out), 0, 2), np.zeros((4, 32), dtype=np.float32))  # lines 1-5 need 5 rows
    np.save(piece_path(str(out), 1, 2), np.zeros((5, 32), dtype=np.float32))
    result = cli("embed", src, "-o", out, "--merge", "2")
    assert result.exit_code == 2 and "has 4 rows, but lines 1-5 of a 10-line input need 5" in result.stderr
    assert not out.exists()
    assert cli("embed", "-", "-o", out, "--merge", "2").exit_code == 2


# ----------------------------------------------------------------------------- search and mine


def unit(a):
    a = np.asarray(a, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def clustered(n, dim=16, clusters=20, seed=0):
    """Unit vectors around a few centres, like sentence embeddings (and unlike uniform noise)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    return unit(centres[rng.integers(0, clusters, n)] + 0.4 * rng.normal(size=(n, dim)))


def test_faiss_flat_equals_exact_search_and_mining():
    pytest.importorskip("faiss")
    from wacse_cli.index import build_index
    from wacse_cli.search import mine, search

    corpus, queries = clustered(300), clustered(40, seed=1)
    flat, report = build_index(corpus, "faiss-flat", progress=False)
    assert report.kind == "faiss-flat" and report.path is None
    for score in ("cosine", "margin"):
        exact_scores, exact_idx = search(queries, corpus, 5, score=score)
        query_index, _ = build_index(queries, "faiss-flat", progress=False)
        scores, idx = search(queries, corpus, 5, score=score, corpus_index=flat, query_index=query_index)
        np.testing.assert_array_equal(idx, exact_idx)
        np.testing.assert_array_equal(scores, exact_scores)
    src_flat, _ = build_index(queries, "faiss-flat", progress=False)
    assert mine(queries, corpus, k=3) == mine(queries, corpus, k=3, src_index=src_flat, tgt_index=flat)


def test_approximate_indexes_report_recall():
    pytest.importorskip("faiss")
    from wacse_cli.index import index_for, ivf_lists

    corpus, queries = clustered(2000), clustered(300, seed=1)
    _, coarse = index_for(corpus, queries, 10, "faiss-ivf", nprobe=1, progress=False)
    _, full = index_for(corpus, queries, 10, "faiss-ivf", nprobe=ivf_lists(2000), progress=False)
    _, hnsw = index_for(corpus, queries, 10, "faiss-hnsw", progress=False)
    assert coarse.params == {"lists": 45, "nprobe": 1} and coarse.sample == 256 and coarse.k == 10
    assert 0 < coarse.recall < full.recall == 1.0
    assert hnsw.recall > 0.9
    assert "faiss-ivf index (lists 45, nprobe 1, built): recall@10" in coarse.line("queries -> corpus")


def columns(result, at):
    assert result.exit_code == 0, result.output
    return [float(line.split("\t")[at - 1]) for line in result.stdout.splitlines()]


def test_search_cli_with_an_index_caches_it_and_reports_recall(cli, tiny_model, tmp_path, wacse_home):
    pytest.importorskip("faiss")
    pairs = demo_pairs("ka")
    queries = write_lines(tmp_path / "q.txt", [a for a, _ in pairs[:20]])
    corpus = write_lines(tmp_path / "c.txt", [b for _, b in pairs])
    args = ("search", queries, "--corpus", corpus, "-k", "3", "-m", tiny_model)
    for score in ("cosine", "margin"):  # the tiny model's random vectors are nearly parallel: near-ties may swap
        assert columns(cli(*args, "--score", score, "--index", "faiss-flat"), 3) == pytest.approx(
            columns(cli(*args, "--score", score, "--index", "exact"), 3), abs=2e-6)
    first = cli(*args, "--index", "faiss-hnsw", "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)["index"]
    assert report["kind"] == "faiss-hnsw" and 0 <= report["recall"] <= 1 and not report["loaded"]
    assert "queries -> corpus: faiss-hnsw index" in first.stderr and "recall@3" in first.stderr
    assert [str(p) for p in (wacse_home / "embeddings").glob("*.faiss")] == [report["path"]]
    again = json.loads(cli(*args, "--index", "faiss-hnsw", "--json").stdout)
    assert again["index"]["loaded"] and again["results"] == json.loads(first.stdout)["results"]


def test_mine_cli_with_an_index_equals_exact(cli, tiny_model, tmp_path):
    pytest.importorskip("faiss")
    pairs = demo_pairs("jv")[:60]
    src = write_lines(tmp_path / "a.txt", [a for a, _ in pairs])
    tgt = write_lines(tmp_path / "b.txt", [b for _, b in pairs])
    exact = cli("mine", src, tgt, "-m", tiny_model, "--json")
    flat = cli("mine", src, tgt, "-m", tiny_model, "--json", "--index", "faiss-flat")
    assert exact.exit_code == 0 and flat.exit_code == 0, flat.output
    exact, flat = json.loads(exact.stdout), json.loads(flat.stdout)
    # The tiny random model's sentence vectors are nearly identical (margins within 1e-5 of 1), so
    # which of two float32-tied neighbours each search keeps can change the last greedy picks; the
    # pairs both find must score alike, and test_mine_with_an_index_equals_exact checks exactness.
    exact_scores = {(p["source_line"], p["target_line"]): p["score"] for p in exact["pairs"]}
    common = [(exact_scores[key], p["score"]) for p in flat["pairs"]
              if (key := (p["source_line"], p["target_line"])) in exact_scores]
    assert len(common) >= 0.9 * len(exact["pairs"]) > 0
    assert [f for _, f in common] == pytest.approx([e for e, _ in common], abs=1e-5)
    assert exact["index"]["source_to_target"]["kind"] == "exact"
    assert flat["index"]["target_to_source"]["kind"] == "faiss-flat"


def test_missing_faiss_and_unknown_index_are_one_line(cli, tiny_model, tmp_path, monkeypatch):
    from wacse_cli.index import choose_index

    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    good = write_lines(tmp_path / "good.txt", ["hello", "world"])
    result = cli("search", good, "--corpus", good, "-m", tiny_model, "--index", "faiss-ivf")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("wacse: error: --index faiss-ivf needs FAISS, which is not installed; "
                                     "pip install -e '.[faiss]' (or faiss-gpu), or use --index exact")
    assert cli("search", good, "--corpus", good, "-m", tiny_model).exit_code == 0  # auto: exact
    kind, advice = choose_index("auto", 10**11)
    assert kind == "exact" and "pip install -e '.[faiss]'" in advice
    result = cli("mine", good, good, "-m", tiny_model, "--index", "annoy")
    assert result.exit_code == 2 and "--index must be one of auto, exact, faiss-flat" in result.stderr


def test_mine_with_an_index_equals_exact():
    """On vectors with real neighbourhoods, FAISS brute force mines exactly the pairs and scores of
    wacse's exact search (both rescored in float64)."""
    pytest.importorskip("faiss")
    from wacse_cli.index import build_index
    from wacse_cli.search import mine

    rng = np.random.default_rng(0)
    unit = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    src = unit(rng.standard_normal((500, 32)))
    tgt = unit(src[rng.permutation(500)] + 0.1 * rng.standard_normal((500, 32)))
    exact = mine(src, tgt, k=4)
    flat = mine(src, tgt, k=4, src_index=build_index(src, "faiss-flat", progress=False)[0],
                tgt_index=build_index(tgt, "faiss-flat", progress=False)[0])
    assert [(p.src, p.tgt) for p in flat] == [(p.src, p.tgt) for p in exact] and len(exact) == 500
    assert [p.score for p in flat] == pytest.approx([p.score for p in exact], abs=1e-12)
