"""wacse bootstrap: rounds, stopping, resuming and the dev split, on the tiny model."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

import numpy as np

from wacse_cli.bootstrap import (Bootstrap, BootstrapSettings, Round, calibrated_cut, heldout_precision, orphans,
                                 round_table, split_seed)
from wacse_cli.errors import UsageError
from wacse_cli.io import ParallelText, Sentences
from wacse_cli.model import load_encoder
from wacse_cli.recipe import load_recipe

from .conftest import demo_pairs


def seed_text(n: int = 60) -> ParallelText:
    return ParallelText("seed.en-kk.tsv", "en", "kk", demo_pairs("kk")[:n])


def monolingual() -> tuple[Sentences, Sentences]:
    """Sources of pairs 60-159, targets of 60-109 and 160-209: half of each side has no partner."""
    pairs = demo_pairs("kk")
    src = [s for s, _ in pairs[60:160]]
    tgt = [t for _, t in pairs[60:110] + pairs[160:210]]
    random.Random(0).shuffle(tgt)
    return Sentences("mono.en", src), Sentences("mono.kk", tgt)


def recipe(tiny_model):
    return load_recipe("demo", [f'model="{tiny_model}"', "dev_size=10", "steps=2", "batch_size=16"])


def fake_trainer(tiny_model, dev_scores):
    """A train() that copies the tiny model in place of training and returns the given dev P@1s."""
    scores, calls = iter(dev_scores), []

    def train(recipe, folder: Path, files: list[str]) -> float:
        shutil.copytree(tiny_model, folder)
        calls.append({"model": recipe.model, "dev_data": recipe.dev_data,
                      "pairs": Path(files[0]).read_text(encoding="utf-8").splitlines()})
        return next(scores)

    return train, calls


def make_run(tiny_model, out, dev_scores, resume=False, **settings):
    train, calls = fake_trainer(tiny_model, dev_scores)
    r = recipe(tiny_model)
    run = Bootstrap(r, split_seed(seed_text(), r), *monolingual(), out, BootstrapSettings(**settings), train=train,
                    load=lambda path: load_encoder(path, device="cpu"), resume=resume, progress=False)
    return run, calls


def test_seed_split_keeps_dev_sentences_out_of_training():
    pairs = [("a b", "x"), ("c d", "y"), ("a b", "z"), ("e f", "w"), ("g h", "v")] + [(f"s{i}", f"t{i}") for i in range(45)]
    seed = split_seed(ParallelText("s.en-kk.tsv", "en", "kk", pairs), load_recipe("demo", ["dev_size=10"]))
    assert len(seed.dev) == 10
    dev_src, dev_tgt = {s for s, _ in seed.dev}, {t for _, t in seed.dev}
    assert not any(s in dev_src or t in dev_tgt for s, t in seed.train)
    assert len(seed.train) + len(seed.dev) <= 50


def test_heldout_precision_counts_pairs_that_touch_a_dev_sentence():
    dev = [("a", "x"), ("b", "y")]
    mined = [("a", "x"), ("b", "q"), ("c", "y"), ("d", "z")]
    assert heldout_precision(mined, dev) == (1 / 3, 3)
    assert heldout_precision([("d", "z")], dev) == (None, 0)


def test_round_table_shows_every_round():
    table = round_table([Round(0, 40, dev_p1=0.5), Round(1, 55, 30, 15, 0.9, 10, 0.95, 0.625)])
    assert table.splitlines() == [
        "round\ttrain_pairs\tmined\tkept\theldout_precision\tfilter_precision\tdev_p1",
        "0\t40\t0\t0\t-\t-\t0.5000",
        "1\t55\t30\t15\t0.9000\t0.9500\t0.6250",
    ]


def test_rounds_stop_when_dev_stops_improving_and_mined_pairs_never_reach_dev(tiny_model, tmp_path):
    out = tmp_path / "run"
    run, calls = make_run(tiny_model, out, [0.5, 0.6, 0.55, 0.9], rounds=5)
    rounds = run.run()
    assert [r.round for r in rounds] == [0, 1, 2]  # round 2 fell below round 1
    summary = json.loads((out / "wacse.json").read_text(encoding="utf-8"))
    assert summary["status"] == "dev P@1 fell"
    assert (summary["best_round"], summary["best_model"]) == (1, str(out / "round-1" / "model"))
    dev = (out / "dev.en-kk.tsv").read_text(encoding="utf-8").splitlines()
    dev_sentences = {side for line in dev for side in line.split("\t")}
    for call in calls:
        assert call["model"] == tiny_model  # init "base": every round from the base model
        assert call["dev_data"] == str(out / "dev.en-kk.tsv")
        assert not {side for line in call["pairs"] for side in line.split("\t")} & dev_sentences
    mined = (out / "round-1" / "mined.tsv").read_text(encoding="utf-8").splitlines()
    assert mined[0].split("\t")[:4] == ["margin", "probability", "decision", "reason"]
    kept = {tuple(line.split("\t")[4:]) for line in mined[1:] if line.split("\t")[2] == "keep"}
    assert len(mined) - 1 == rounds[1].mined and len(kept) == rounds[1].kept
    assert kept <= {tuple(line.split("\t")) for line in calls[1]["pairs"]}
    assert rounds[1].train_pairs == len(calls[1]["pairs"]) == len(run.seed.train) + rounds[1].kept
    assert rounds[1].heldout_pairs > 0 and 0 <= rounds[1].heldout_precision <= 1
    orphan_src, orphan_tgt = orphans(run.seed.train)
    assert rounds[1].negatives > 0 and not any(s in orphan_src or t in orphan_tgt for s, t in kept)


def test_orphans_are_one_side_of_each_training_pair():
    assert orphans([("a", "x"), ("b", "y"), ("c", "z")]) == (["a", "c"], ["y"])


def test_calibrated_cut_keeps_the_margins_above_the_orphans():
    scores = np.array([1.30, 1.25, 1.20, 1.02, 1.01, 1.00, 1.18])
    negatives = np.array([1.00, 1.01, 1.02, 1.03])
    reasons = [None, None, None, None, None, None, "copy"]
    probs, cut = calibrated_cut(scores, negatives, reasons, 0.95)
    assert cut.threshold == 1.20 and cut.kept == 3 and probs[6] == 0.0
    assert probs[:3].tolist() == [1.0, 1.0, 1.0] and probs[3:6].max() < 0.95


def test_a_saturated_dev_split_does_not_stop_the_rounds(tiny_model, tmp_path):
    run, _ = make_run(tiny_model, tmp_path / "run", [1.0, 1.0, 1.0], rounds=2)
    assert [r.round for r in run.run()] == [0, 1, 2]
    assert json.loads((tmp_path / "run" / "wacse.json").read_text())["status"] == "ran 2 rounds"


def test_resume_continues_after_the_last_finished_round(tiny_model, tmp_path):
    out = tmp_path / "run"
    first, _ = make_run(tiny_model, out, [0.5, 0.6], rounds=1)
    assert len(first.run()) == 2
    assert json.loads((out / "wacse.json").read_text())["status"] == "ran 1 rounds"
    (out / "round-2").mkdir()  # an unfinished round is done again
    again, calls = make_run(tiny_model, out, [0.7], resume=True, rounds=2, init="previous")
    rounds = again.run()
    assert [r.round for r in rounds] == [0, 1, 2] and len(calls) == 1
    assert calls[0]["model"] == str(out / "round-1" / "model")  # init "previous"
    assert rounds[2].dev_p1 == 0.7


def test_an_existing_run_needs_resume(tiny_model, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "x").write_text("")
    run, _ = make_run(tiny_model, out, [0.5])
    with pytest.raises(UsageError, match="already holds files; pass --resume"):
        run.run()


def test_bootstrap_command_trains_and_mines_on_the_tiny_model(cli, tiny_model, tmp_path):
    seed = tmp_path / "seed.en-kk.tsv"
    seed.write_text("".join(f"{a}\t{b}\n" for a, b in demo_pairs("kk")[:60]), encoding="utf-8")
    src, tgt = monolingual()
    (tmp_path / "mono.en").write_text("\n".join(src.lines) + "\n", encoding="utf-8")
    (tmp_path / "mono.kk").write_text("\n".join(tgt.lines) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    result = cli("bootstrap", seed, "--src", tmp_path / "mono.en", "--tgt", tmp_path / "mono.kk", "-m", tiny_model,
                 "-o", out, "--recipe", "demo", "--rounds", "1", "--set", "steps=2", "--set", "eval_interval=2",
                 "--set", "batch_size=16", "--set", "chunk_size=8", "--set", "dev_size=10",
                 "--set", "align.threshold=0.0")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("round\ttrain_pairs") and [line.split("\t")[0] for line in lines[1:]] == ["0", "1"]
    assert (out / "round-1" / "model" / "wacse.json").is_file() and (out / "round-1" / "mined.tsv").is_file()
    assert "best: round" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--rounds", "-1"], "--rounds must be at least 0, not -1"),
    (["--init", "scratch"], "--init must be base or previous, not 'scratch'"),
    (["--precision", "0"], "--precision must be between 0 and 1 (exclusive), not 0.0"),
])
def test_bootstrap_bad_options(cli, tmp_path, args, message):
    result = cli("bootstrap", "seed.en-kk.tsv", "--src", "a", "--tgt", "b", "-o", tmp_path / "o", "-m", "m", *args)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"wacse: error: {message}"
