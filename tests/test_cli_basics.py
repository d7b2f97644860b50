"""The foundation commands end to end on the tiny model, through typer's CliRunner."""
import json
import re

import numpy as np
import pytest

from wacse_cli.cli import main
from wacse_cli.embed import encode
from wacse_cli.model import load_encoder

from .conftest import demo_pairs


def test_version_and_help(cli, capsys):
    assert cli("--version").stdout.startswith("wacse ")
    assert "embed" in cli("-h").stdout
    assert main([]) == 0 and "Commands" in capsys.readouterr().out
    assert main(["embed", "--no-such-option"]) == 2
    assert re.fullmatch(r"wacse: error: No such option(: --no-such-option|\s'--no-such-option'\.) "  # click's wording
                        r"\(see 'wacse embed --help'\)", capsys.readouterr().err.strip())


def test_embed_keeps_input_order_and_unit_length(cli, tiny_model, tmp_path):
    sentences = [a for a, _ in demo_pairs("ka")[:30]]
    src = tmp_path / "s.txt"
    src.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    out = tmp_path / "e.npy"
    result = cli("embed", src, "-o", out, "-m", tiny_model, "--batch-size", "7")
    assert result.exit_code == 0, result.output
    vectors = np.load(out)
    assert vectors.shape == (30, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, rtol=1e-5)
    encoder = load_encoder(tiny_model)
    one_by_one = np.stack([encode(encoder, [s], progress=False)[0] for s in sentences])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)
    half = tmp_path / "h.npy"
    assert cli("embed", src, "-o", half, "-m", tiny_model, "--dtype", "float16").exit_code == 0
    assert np.load(half).dtype == np.float16


def test_embed_reads_stdin_and_skips_bad_lines(cli, tiny_model, tmp_path):
    out = tmp_path / "e.npy"
    result = cli("embed", "-", "-o", out, "-m", tiny_model, "--on-bad-line", "skip", "--json", input="one\n\nthree\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped"] == 1
    vectors = np.load(out)
    assert vectors.shape[0] == 3 and not vectors[1].any() and vectors[0].any()


def test_search_output_and_cache(cli, tiny_model, tmp_path, wacse_home):
    pairs = demo_pairs("kk")[:25]
    queries, corpus = tmp_path / "q.txt", tmp_path / "c.txt"
    queries.write_text("\n".join(a for a, _ in pairs[:3]) + "\n", encoding="utf-8")
    corpus.write_text("\n".join(b for _, b in pairs) + "\n", encoding="utf-8")
    result = cli("search", queries, "--corpus", corpus, "-k", "2", "-m", tiny_model)
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [(r[0], r[1]) for r in rows] == [("1", "1"), ("1", "2"), ("2", "1"), ("2", "2"), ("3", "1"), ("3", "2")]
    assert all(r[4] == pairs[int(r[3]) - 1][1] for r in rows)
    cached = list((wacse_home / "embeddings").glob("*.npy"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    again = cli("search", queries, "--corpus", corpus, "-k", "2", "-m", tiny_model)
    assert again.stdout == result.stdout and cached[0].stat().st_mtime_ns == stamp
    margin = cli("search", queries, "--corpus", corpus, "-k", "2", "-m", tiny_model, "--score", "margin")
    assert margin.exit_code == 0 and len(margin.stdout.splitlines()) == 6


def test_mine_prints_score_source_target(cli, tiny_model, tmp_path):
    pairs = demo_pairs("jv")[:20]
    src, tgt = tmp_path / "a.txt", tmp_path / "b.txt"
    src.write_text("\n".join(a for a, _ in pairs) + "\n", encoding="utf-8")
    tgt.write_text("\n".join(b for _, b in pairs) + "\n", encoding="utf-8")
    result = cli("mine", src, tgt, "-m", tiny_model, "-o", tmp_path / "mined.tsv")
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in (tmp_path / "mined.tsv").read_text(encoding="utf-8").splitlines()]
    assert rows and all(len(r) == 3 for r in rows)
    scores = [float(r[0]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert len({r[1] for r in rows}) == len(rows) and len({r[2] for r in rows}) == len(rows)


def test_eval_retrieval_matches_an_independent_computation(cli, tiny_model, pairs_file, tmp_path):
    out = tmp_path / "results.json"
    result = cli("eval", "retrieval", pairs_file, "-m", tiny_model, "-o", out)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    subset = data["scores"]["test"][0]
    assert subset["hf_subset"] == "en-kk" and subset["languages"] == ["eng-Latn", "kaz-Cyrl"]
    encoder = load_encoder(tiny_model)
    pairs = demo_pairs("kk")[:40]
    a = encode(encoder, [p[0] for p in pairs], progress=False)
    b = encode(encoder, [p[1] for p in pairs], progress=False)
    sims = a.astype(np.float64) @ b.T.astype(np.float64)
    # the random tiny model leaves near-ties that float32 rounding may break either way: a query whose
    # gold similarity is within 1e-5 of its best may count as a hit or a miss, nothing else may differ
    gold = np.diag(sims)
    others = [np.where(np.eye(40, dtype=bool), -np.inf, s).max(1) for s in (sims, sims.T)]
    sure = [(gold > best + 1e-5).mean() for best in others]
    maybe = [(gold >= best - 1e-5).mean() for best in others]
    assert sum(sure) / 2 - 1e-9 <= subset["main_score"] <= sum(maybe) / 2 + 1e-9
    assert subset["main_score"] == pytest.approx((subset["accuracy_src2tgt"] + subset["accuracy_tgt2src"]) / 2)
    assert "argmax cosine" in data["scoring"]


def test_eval_sts_and_mining(cli, tiny_model, tmp_path):
    pairs = demo_pairs("tl")[:12]
    sts = tmp_path / "sts.tsv"
    sts.write_text("".join(f"{a}\t{b}\t{i % 5}\n" for i, (a, b) in enumerate(pairs)), encoding="utf-8")
    result = cli("eval", "sts", sts, "-m", tiny_model, "--json")
    assert result.exit_code == 0, result.output
    encoder = load_encoder(tiny_model)
    first, second = (encode(encoder, [p[side] for p in pairs], progress=False) for side in (0, 1))
    cosines = (first.astype(np.float64) * second.astype(np.float64)).sum(1)  # unit vectors; float64 as eval sts
    expected = 100 * np.corrcoef(_average_ranks(cosines), _average_ranks([i % 5 for i in range(12)]))[0, 1]
    assert json.loads(result.stdout)["spearman"] == pytest.approx(expected, abs=1e-6)
    src, tgt, gold = tmp_path / "s.tsv", tmp_path / "t.tsv", tmp_path / "g.tsv"
    src.write_text("".join(f"s{i}\t{a}\n" for i, (a, _) in enumerate(pairs)), encoding="utf-8")
    tgt.write_text("".join(f"t{i}\t{b}\n" for i, (_, b) in enumerate(pairs)), encoding="utf-8")
    gold.write_text("".join(f"s{i}\tt{i}\n" for i in range(len(pairs))), encoding="utf-8")
    result = cli("eval", "mining", src, tgt, gold, "-m", tiny_model, "--json", "--threshold", "0")
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)) >= {"precision", "recall", "f1", "threshold"}


def _average_ranks(values) -> list[float]:
    """Ranks from 1, ties sharing the mean of their places (as Spearman's rho defines them)."""
    ordered = sorted(values)
    return [sum(k + 1 for k, v in enumerate(ordered) if v == x) / ordered.count(x) for x in values]


def test_offline_missing_model_is_one_line(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    src = tmp_path / "s.txt"
    src.write_text("hello\n")
    result = cli("embed", src, "-o", tmp_path / "e.npy", "-m", "no-such-org/no-such-model")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "wacse: error: model 'no-such-org/no-such-model' is not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
        "download it once with network access (hf download no-such-org/no-such-model), or pass a local folder to --model"
    ]
    assert not (tmp_path / "e.npy").exists()
