"""wacse filter: the rules, the calibration, and the command on a tiny model."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from wacse_cli.calibrate import choose_cut, cut_at, fit, isotonic, negative_pairs
from wacse_cli.filter_rules import RuleSettings, apply_rules, is_copy, language_scripts, numbers, script_share

from .conftest import demo_pairs


# ----------------------------------------------------------------------------- rules


def test_language_scripts_come_from_cldr_and_expand_composites():
    assert language_scripts("kk")[0] == "Cyrl"
    assert language_scripts("kaz")[0] == "Cyrl"  # a three-letter code finds the same row
    assert language_scripts("ka") == ("Geor",)
    assert set(language_scripts("ja")) >= {"Hira", "Kana", "Hani"}
    assert language_scripts("qqq") is None


def test_script_share_counts_letters_only():
    assert script_share("abc абв 123 !", ("Cyrl",)) == 0.5
    assert script_share("123 !", ("Latn",)) is None


def test_numbers_read_native_digits():
    assert numbers("१२ apples, 3.5 kg") == Counter({"12": 1, "3.5": 1})


def test_copies_ignore_case_and_punctuation():
    assert is_copy("Hello, world!", "hello world", 0.9)
    assert not is_copy("Open the file", "Файлды ашу", 0.9)


def test_each_rule_names_its_reason():
    pairs = [
        ("Open the file", "Файлды ашу"),
        None,
        ("A", "Б"),
        ("Save the playlist", "Save the playlist!"),
        ("Close the window", "ფანჯრის დახურვა"),
        ("Wait 5 seconds", "10 секунд күтіңіз"),
        ("Open the file", "Файлды ашу"),
        ("Show the subtitles now", "Субтитрлерді қазір көрсету"),
        ("Show the help", "Анықтаманы көрсету"),
        ("Stop the video", "Видеоны тоқтату"),
        ("Play the next track in the list of recently opened files", "Келесі"),
    ]
    reasons = apply_rules(pairs, "en", "kk", RuleSettings())
    assert reasons == [None, "malformed", "too short", "copy", "wrong script", "numbers", "duplicate", None, None, None,
                       "length ratio"]


def test_names_and_code_shared_by_both_sides_do_not_count_against_the_script():
    pairs = [("Mac OS X OpenGL video output", "Mac OS X OpenGL видео шығысы")]
    assert apply_rules(pairs, "en", "kk") == [None]


def test_unknown_languages_skip_the_script_rule():
    assert apply_rules([("Open the file", "ფაილის გახსნა")], "en", "qqq") == [None]


# ----------------------------------------------------------------------------- calibration


def test_isotonic_pools_adjacent_violators():
    assert isotonic(np.array([3.0, 1.0, 2.0]), np.ones(3)).tolist() == [2.0, 2.0, 2.0]
    assert isotonic(np.array([1.0, 3.0, 2.0, 4.0]), np.ones(4)).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert isotonic(np.array([1.0, 3.0, 2.0]), np.array([1.0, 3.0, 1.0])).tolist() == [1.0, 2.75, 2.75]


def test_negatives_never_pair_a_line_with_its_own_target():
    src, tgt, kind = negative_pairs(50, seed=3)
    assert len(src) == 50 + 2 * 49
    assert not np.any(src == tgt)
    assert set(zip(src[kind == 1].tolist(), tgt[kind == 1].tolist())) == (
        {(i, i + 1) for i in range(49)} | {(i + 1, i) for i in range(49)})


def test_cut_is_the_lowest_reaching_the_target_precision():
    scores, probs = np.array([4.0, 3.0, 2.0, 1.0]), np.array([1.0, 1.0, 0.5, 0.0])
    cut = choose_cut(scores, probs, 0.8)  # running precision 1, 1, 0.833, 0.625
    assert (cut.threshold, cut.kept) == (2.0, 3)
    assert cut.precision == pytest.approx(2.5 / 3) and cut.recall == 1.0
    assert choose_cut(scores, probs, 0.9).threshold == 3.0
    assert choose_cut(scores, np.zeros(4), 0.5).kept == 0
    fixed = cut_at(scores, probs, 3.5)
    assert (fixed.kept, fixed.precision, fixed.recall) == (1, 1.0, 0.4)


def test_ties_are_kept_or_dropped_together():
    cut = choose_cut(np.array([3.0, 2.0, 2.0, 1.0]), np.array([1.0, 1.0, 0.0, 0.0]), 0.7)
    assert (cut.threshold, cut.kept) == (3.0, 1)  # keeping one of the two 2.0s is not a cut


def test_calibration_recovers_a_known_mixture():
    rng = np.random.default_rng(0)
    good, noise = rng.normal(3, 0.5, 7000), rng.normal(0, 0.5, 3000)
    calibration = fit(np.concatenate([good, noise]), rng.normal(0, 0.5, 20000))
    assert calibration.noise_share == pytest.approx(0.3, abs=0.03)
    scores = np.concatenate([good, noise])
    cut = choose_cut(scores, calibration.probability(scores), 0.95)
    kept = scores >= cut.threshold
    true_precision = kept[:7000].sum() / kept.sum()
    assert cut.precision >= 0.95
    assert true_precision == pytest.approx(cut.precision, abs=0.015)
    assert kept[:7000].mean() > 0.99


# ----------------------------------------------------------------------------- the command


@pytest.fixture
def noisy_file(tmp_path):
    rows = [f"{a}\t{b}" for a, b in demo_pairs("kk")[:60]]
    rows[5] = "no tab on this line"
    rows[10] = f"{demo_pairs('kk')[10][0]}\t{demo_pairs('kk')[10][0]}"  # an untranslated copy
    rows[20] = f"{demo_pairs('kk')[20][0]}\t{demo_pairs('ka')[20][1]}"  # Georgian for Kazakh
    rows.append(rows[30])  # a duplicate
    path = tmp_path / "noisy.en-kk.tsv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_filter_writes_kept_pairs_in_order_and_a_line_of_scores_per_input_line(cli, tiny_model, noisy_file, tmp_path):
    out, scores = tmp_path / "kept.tsv", tmp_path / "scores.tsv"
    result = cli("filter", noisy_file, "-m", tiny_model, "-o", out, "--scores", scores, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    lines = noisy_file.read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in scores.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(lines) == info["pairs"] == 61
    assert [rows[i][2:] for i in (5, 10, 20, 60)] == [
        ["drop", "malformed"], ["drop", "copy"], ["drop", "wrong script"], ["drop", "duplicate"]]
    assert all(row[0] == "-" and row[1] == "0.0000" for row in (rows[5], rows[10], rows[20], rows[60]))
    kept = [lines[i] for i, row in enumerate(rows) if row[2] == "keep"]
    assert out.read_text(encoding="utf-8").splitlines() == kept
    assert info["kept"] == len(kept)
    assert sum(info["reasons"].values()) == 61 - len(kept)
    threshold = float("inf") if info["threshold"] is None else info["threshold"]  # None: no cut reached 0.95
    assert all((float(row[0]) >= threshold) == (row[2] == "keep") for row in rows if row[0] != "-")
    assert "estimated precision" in result.stderr and "dropped: malformed 1, copy 1" in result.stderr


def test_a_threshold_overrides_the_calibration(cli, tiny_model, noisy_file, tmp_path):
    result = cli("filter", noisy_file, "-m", tiny_model, "--threshold", "-100", "--json", "-o", tmp_path / "k.tsv")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["kept"], info["threshold_from"], info["target_precision"]) == (57, "--threshold", None)


@pytest.mark.parametrize("args, message", [
    (["--precision", "1.5"], "--precision must be between 0 and 1 (exclusive), not 1.5"),
    (["--score", "bleu"], "--score must be margin or cosine, not 'bleu'"),
    (["-k", "0"], "-k must be at least 1, not 0"),
])
def test_bad_options_are_usage_errors(cli, noisy_file, args, message):
    result = cli("filter", noisy_file, "-m", "unused", *args)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"wacse: error: {message}"


def test_the_input_is_never_overwritten(cli, noisy_file):
    before = noisy_file.read_bytes()
    result = cli("filter", noisy_file, "-m", "unused", "-o", noisy_file)
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"wacse: error: the output {noisy_file} is also an input; writing it would "
                                     "destroy the input; write the output to another file (-o)")
    assert noisy_file.read_bytes() == before
