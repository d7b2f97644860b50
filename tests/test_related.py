"""RTL and multi-way training against hand computations; multi-way data end to end; the ablation script."""
import contextlib
import importlib.util
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wacse_cli import losses as L
from wacse_cli.data import Example, encode_examples, encode_rows, make_batch, make_multiway_batch
from wacse_cli.demo import multiway_demo_file
from wacse_cli.gradcache import WacseObjective, multiway_step
from wacse_cli.io import read_multiway
from wacse_cli.model import load_encoder
from wacse_cli.recipe import Losses
from wacse_cli.mlm_head import candidate_tokens
from wacse_cli.rtl import RtlDecoder, rtl_logits

from .conftest import demo_pairs

COLUMNS = ["en", "kk", "ka", "jv", "tl"]


@pytest.fixture(scope="module")
def encoder(tiny_model):
    encoder = load_encoder(tiny_model, with_mlm_head=True).double()
    encoder.eval()  # no dropout: hand computations and chunks must see the same network
    return encoder


@pytest.fixture(scope="module")
def rows():
    return read_multiway(multiway_demo_file()).rows[:10]


def decoder_layers(decoder: RtlDecoder, hidden: torch.Tensor) -> torch.Tensor:
    for layer in decoder.layers:
        out = layer(hidden)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def rtl_by_hand(encoder, decoder, pairs, both: bool) -> float:
    """One unpadded sequence per pair and direction: [X's token states; LayerNorm(<mask> + position
    + token type)] through the copied layers, the MLM head, cross-entropy at Y's positions 1.."""
    emb, mask_id = encoder.backbone.embeddings, encoder.tokenizer.mask_token_id
    total, count = 0.0, 0
    for a, b in pairs:
        for src, tgt in [(a, b), (b, a)][: 2 if both else 1]:
            s_ids = torch.tensor([encoder.tokenizer(src)["input_ids"]])
            t_ids = torch.tensor(encoder.tokenizer(tgt)["input_ids"])
            states = encoder.token_states(s_ids, torch.ones_like(s_ids))[0]
            positions = torch.arange(len(t_ids)) + emb.padding_idx + 1  # XLM-R numbers positions after padding
            slots = emb.LayerNorm(emb.word_embeddings.weight[mask_id] + emb.position_embeddings(positions)
                                  + emb.token_type_embeddings.weight[0])
            hidden = decoder_layers(decoder, torch.cat([states, slots])[None])[0]
            logits = encoder.mlm_head(hidden[s_ids.shape[1] + 1:])
            total += float(F.cross_entropy(logits, t_ids[1:], reduction="sum"))
            count += len(t_ids) - 1
    return total / count


@pytest.mark.parametrize("both", [True, False])
def test_rtl_equals_the_steps_assembled_by_hand(encoder, both):
    pairs = [p for p in demo_pairs("kk") if len(p[0].split()) > 1][:4]
    encoded = encode_examples([Example(a, b, "en", "kk") for a, b in pairs], encoder.tokenizer, "", 32, ["en", "kk"])
    batch = make_batch(encoded, encoder.tokenizer.pad_token_id, np.random.default_rng(0))
    assert batch.x.mask.sum(1).unique().numel() > 1 and batch.y.mask.sum(1).unique().numel() > 1  # padding on both sides
    decoder = RtlDecoder.from_encoder(encoder)
    objective = WacseObjective(encoder, Losses(tr=0, awp=0, wtr=0, rtl=1), decoder=decoder, rtl_both_directions=both)
    with torch.no_grad():
        (_, x_states), (_, y_states) = objective.encode_side(batch.x), objective.encode_side(batch.y)
        value = objective.rtl(batch, x_states, y_states, objective.rtl_tokens(batch))
        expected = rtl_by_hand(encoder, decoder, pairs, both)
    assert value.item() == pytest.approx(expected, rel=1e-9)


def test_rtl_candidates_score_the_targets_among_those_rows_of_the_full_logits(encoder):
    pairs = [p for p in demo_pairs("kk") if len(p[0].split()) > 1][:4]
    encoded = encode_examples([Example(a, b, "en", "kk") for a, b in pairs], encoder.tokenizer, "", 32, ["en", "kk"])
    batch = make_batch(encoded, encoder.tokenizer.pad_token_id, np.random.default_rng(0))
    decoder = RtlDecoder.from_encoder(encoder)
    objective = WacseObjective(encoder, Losses(tr=0, awp=0, wtr=0, rtl=1), decoder=decoder, rtl_candidates=64)
    vocab = encoder.mlm_head.decoder().out_features
    with torch.no_grad():
        (_, x_states), (_, y_states) = objective.encode_side(batch.x), objective.encode_side(batch.y)
        tokens = objective.rtl_tokens(batch)
        torch.manual_seed(5)
        value = objective.rtl(batch, x_states, y_states, tokens).item()
        torch.manual_seed(5)
        expected = 0.0
        for states, source, target in [(x_states, batch.x, batch.y), (y_states, batch.y, batch.x)]:
            logits, targets = rtl_logits(decoder, encoder, states, source, target, contextlib.nullcontext())
            rows, index = candidate_tokens(targets, vocab, 64)
            assert len(rows) <= 64 < vocab and torch.equal(rows[index], targets)
            expected += float(F.cross_entropy(logits[:, rows], index, reduction="sum")) / tokens
    assert value == pytest.approx(expected, rel=1e-9)


def test_rtl_refuses_an_encoder_without_the_layout(encoder):
    from wacse_cli.errors import ModelError

    class Flat:
        backbone = torch.nn.Linear(2, 2)
        backbone.config = type("Config", (), {"model_type": "flat"})()

    with pytest.raises(ModelError, match="RTL needs a BERT- or XLM-R-style encoder.*'flat'"):
        RtlDecoder.from_encoder(Flat())


def multiway_batch(encoder, rows):
    encoded = encode_rows(rows, COLUMNS, encoder.tokenizer, "", 32, [])
    return make_multiway_batch(encoded, encoder.tokenizer.pad_token_id)


def test_multiway_loss_is_the_mean_of_pairwise_tr_by_hand(encoder, rows):
    batch = multiway_batch(encoder, rows)
    result = multiway_step(WacseObjective(encoder, Losses(tr=1, awp=0, wtr=0)), batch, chunk_size=len(batch.cells))
    by_hand = {}
    with torch.no_grad():
        for a, b in itertools.combinations(range(len(COLUMNS)), 2):
            both = [r for r in rows if r[a] is not None and r[b] is not None]
            if len(both) >= 2:
                va, vb = (encoder(**encoder.tokenize([r[c] for r in both]))[0] for c in (a, b))
                by_hand[COLUMNS[a], COLUMNS[b]] = float(L.translation_ranking(va, vb, 0.05))
    assert len(by_hand) >= 6 and ("kk", "ka") in by_hand  # non-English pairs are in the mean
    by_hand = list(by_hand.values())
    assert result.tr == pytest.approx(sum(by_hand) / len(by_hand), rel=1e-9)
    encoder.zero_grad(set_to_none=True)


def test_multiway_gradcache_equals_the_full_batch(encoder, rows):
    batch = multiway_batch(encoder, rows)

    def gradients(chunk_size):
        encoder.zero_grad(set_to_none=True)
        multiway_step(WacseObjective(encoder, Losses(tr=1, awp=0, wtr=0)), batch, chunk_size)
        return {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}

    full, chunked = gradients(len(batch.cells)), gradients(4)
    assert full.keys() == chunked.keys() and len(full) > 10
    for name in full:
        torch.testing.assert_close(chunked[name], full[name], rtol=1e-6, atol=1e-9, msg=name)
    encoder.zero_grad(set_to_none=True)


def test_multiway_recipe_trains_and_reports_every_pair(cli, tiny_model, tmp_path):
    bilingual = tmp_path / "en-kk.tsv"
    bilingual.write_text("".join(f"{a}\t{b}\n" for a, b in demo_pairs("kk")[:30]), encoding="utf-8")
    out = tmp_path / "run"
    result = cli("train", multiway_demo_file(), bilingual, "--recipe", "multiway-demo", "-m", tiny_model, "-o", out,
                 "--set", "steps=2", "--set", "eval_interval=2", "--set", "batch_size=12", "--set", "chunk_size=16",
                 "--set", "dev_size=40", "--json")
    assert result.exit_code == 0, result.output
    dev = json.loads(result.stdout)["dev_after"]["pairs"]
    assert {"en-kk", "kk-ka", "ka-jv", "jv-tl"} <= set(dev)
    assert dev["en-kk"]["n_pairs"] > dev["kk-ka"]["n_pairs"]  # the bilingual file's dev pairs join en-kk
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(r["tr"] > 0 and r["awp"] == 0 for r in log)


def test_multiway_data_refuses_word_level_losses(cli, tiny_model, tmp_path):
    result = cli("train", multiway_demo_file(), "--recipe", "demo", "-m", tiny_model, "-o", tmp_path / "run")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("wacse: error: multi-way data trains with TR between every pair of languages "
                                     "only, but losses.awp, losses.wtr are not 0; --set losses.awp=0 --set losses.wtr=0")


def test_eval_retrieval_scores_every_language_pair(cli, tiny_model, tmp_path, rows):
    path = tmp_path / "dev.tsv"
    path.write_text("#langs " + " ".join(COLUMNS) + "\n"
                    + "".join("\t".join(c or "" for c in r) + "\n" for r in rows), encoding="utf-8")
    result = cli("eval", "retrieval", path, "-m", tiny_model, "--json")
    assert result.exit_code == 0, result.output
    subsets = {s["hf_subset"]: s for s in json.loads(result.stdout)["scores"]["test"]}
    expected = {f"{COLUMNS[a]}-{COLUMNS[b]}": sum(r[a] is not None and r[b] is not None for r in rows)
                for a, b in itertools.combinations(range(len(COLUMNS)), 2)}
    assert {k: s["n_pairs"] for k, s in subsets.items()} == {k: n for k, n in expected.items() if n >= 2}
    assert subsets["kk-ka"]["languages"] == ["kaz-Cyrl", "kat-Geor"]
    table = cli("eval", "retrieval", path, "-m", tiny_model)
    assert table.stdout.splitlines()[0] == "file\tpair\tpairs\tsrc2tgt\ttgt2src\tmean"
    assert len(table.stdout.splitlines()) == len(subsets) + 2  # header, one row a pair, average


def test_ablation_script_prints_every_variant_and_seed_with_a_summary(tiny_model, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("ablation", Path(__file__).parents[1] / "benchmarks/ablation.py")
    ablation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablation)
    train, test = tmp_path / "en-kk.tsv", tmp_path / "test.en-kk.tsv"
    train.write_text("".join(f"{a}\t{b}\n" for a, b in demo_pairs("kk")[:40]), encoding="utf-8")
    test.write_text("".join(f"{a}\t{b}\n" for a, b in demo_pairs("kk")[200:220]), encoding="utf-8")
    code = ablation.main([str(train), "--model", tiny_model, "--recipe", "demo", "--steps", "2", "--batch-size", "8",
                          "--set", "dev_size=8", "--set", "eval_interval=2", "--set", "align.threshold=0.0",
                          "--seeds", "1,2", "--variants", "TR,WACSE,TR+RTL", "--test", str(test)])
    assert code == 0
    table, summary = capsys.readouterr().out.split("\n\n")
    lines = table.splitlines()
    assert lines[0] == "variant\tseed\tlosses\tdev_before\tdev_after\ttest\tbest_step\twall_s"
    rows = [line.split("\t") for line in lines[1:]]
    assert [(r[0], r[1]) for r in rows] == [("TR", "1"), ("WACSE", "1"), ("TR+RTL", "1"),
                                           ("TR", "2"), ("WACSE", "2"), ("TR+RTL", "2")]
    assert [r[2] for r in rows[:3]] == ["tr=0.8", "tr=0.8 awp=0.1 wtr=0.1", "tr=0.8 rtl=0.1"]
    assert all(0 <= float(r[4]) <= 1 and 0 <= float(r[5]) <= 1 for r in rows)
    assert len({r[3] for r in rows if r[1] == "1"}) == 1  # the same dev split and base model within a seed
    means = {line.split("\t")[0]: line.split("\t") for line in summary.splitlines()[1:]}
    tr_tests = [float(r[5]) for r in rows if r[0] == "TR"]
    assert means["TR"][1] == "2" and means["TR"][3].startswith(f"{sum(tr_tests) / 2:.4f} ± ")


def test_demo_runs_the_multiway_recipe(cli, tiny_model, tmp_path):
    result = cli("demo", "--recipe", "multiway-demo", "-m", tiny_model, "-o", tmp_path / "run", "--steps", "2",
                 "--set", "eval_interval=2", "--set", "batch_size=8")
    assert result.exit_code == 0, result.output
    pairs = [line.split("\t")[0] for line in result.stdout.splitlines()[2:-1]]
    assert len(pairs) == 10 and "kk-ka" in pairs and "word pairs" not in result.stdout
    wrong = cli("demo", "--recipe", "cpu-small")
    assert wrong.exit_code == 2 and wrong.stderr.strip() == (
        "wacse: error: wacse demo has no recipe 'cpu-small'; choose demo or multiway-demo")


def test_demo_real_trains_the_given_encoder_with_tr_and_wtr(cli, tiny_model, tmp_path):
    result = cli("demo", "--real", "-m", tiny_model, "-o", tmp_path / "run", "--steps", "2",
                 "--set", "eval_interval=2", "--set", "batch_size=8", "--set", "align.layer=2")
    assert result.exit_code == 0, result.output
    assert f"wacse demo: {tiny_model}, the bundled CLDR sample (Unicode License v3), word alignments, TR + WTR" in result.stderr
    assert "a toy" not in result.stderr and "held-out P@1" in result.stdout
    recipe = (tmp_path / "run" / "recipe.toml").read_text()
    assert 'prefix = "query: "' in recipe and "awp = 0.0" in recipe
    wrong = cli("demo", "--real", "--recipe", "multiway-demo")
    assert wrong.exit_code == 2 and wrong.stderr.strip() == (
        "wacse: error: --real fine-tunes on the sample's pairs, not with another recipe; leave --recipe out")


def test_eval_retrieval_reports_a_bad_multiway_line(cli, tiny_model, tmp_path):
    path = tmp_path / "multi.tsv"
    path.write_bytes(b"#langs en kk\na\tb\tc\n")
    result = cli("eval", "retrieval", path, "-m", tiny_model)
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [
        f"wacse: error: {path}:2: expected 2 tab-separated columns (one per header language), found 3; "
        "fix the line, or pass --on-bad-line skip"]
