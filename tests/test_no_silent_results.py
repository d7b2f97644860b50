"""No evaluation exits 0 with nan, inf or a score computed on links outside the sentences; inputs
with nothing to work on are errors; duplicates count as hits; recipes hold finite numbers only."""
import json
from pathlib import Path

import numpy as np
import pytest

from wacse_cli.errors import WacseError
from wacse_cli.evaluate import dev_part, mining_scores, retrieval_accuracy, sts_spearman

from .conftest import demo_pairs
from .test_safe_outputs import refused

SKIPPED = "fix the lines that --on-bad-line error reports"


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def unit(rows):
    a = np.asarray(rows, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_a_duplicate_of_the_gold_sentence_is_a_hit():
    src, tgt = unit([[1, 0], [0, 1], [1, 0]]), unit([[1, 0.1], [0, 1], [1, 0.1]])
    # row 2 retrieves row 0 on either side (a tie goes to the lower index): a miss by index alone
    assert retrieval_accuracy(src, tgt)["src2tgt"] == pytest.approx(2 / 3)
    texts = {"src_texts": ["OK", "Yes", "OK"], "tgt_texts": ["Jaraydy", "Ia", "Jaraydy"]}
    assert retrieval_accuracy(src, tgt, **texts) == {"src2tgt": 1.0, "tgt2src": 1.0, "mean": 1.0}


def test_eval_retrieval_counts_and_reports_duplicates(cli, tiny_model, here):
    # both sides the same text: every sentence finds itself; 3 repeats used to cost 3 of 9 (P@1 0.667)
    lines = ["OK", "Cancel", "Hello world", "OK", "Good morning", "Cancel", "Thank you", "OK", "See you"]
    Path("dup.en-kk.tsv").write_text("".join(f"{s}\t{s}\n" for s in lines), encoding="utf-8")
    result = cli("eval", "retrieval", "dup.en-kk.tsv", "-m", tiny_model, "--json")
    assert result.exit_code == 0, result.output
    subset = json.loads(result.stdout)["scores"]["test"][0]
    assert (subset["accuracy_src2tgt"], subset["accuracy_tgt2src"]) == (1.0, 1.0)
    assert subset["duplicates"] == {"src": 3, "tgt": 3}
    table = cli("eval", "retrieval", "dup.en-kk.tsv", "-m", tiny_model)
    assert table.stdout.splitlines()[1] == "dup.en-kk.tsv\ten-kk\t9\t1.0000\t1.0000\t1.0000"
    assert table.stderr.strip().splitlines()[-1] == ("dup.en-kk.tsv (en-kk): 3 source and 3 target sentences repeat another; "
                                    "retrieving any copy of the gold sentence counts as a hit")


GOLD_TSV = "a b\tc d\t0-0 1-1\n"
ALIGN_CASES = {
    "pharaoh past the gold's words": ("pred.align", "99-99\n", GOLD_TSV,
                                      "pred.align:1: link 99-99 is past the end of gold.tsv's sentences "
                                      "(2 source and 2 target words); links index the words of each side from 0"),
    "gold past its own words": ("pred.align", "0-0\n", "a b\tc d\t0-0 5-1\n",
                                "gold.tsv:1: link 5-1 is past the end of its sentences (2 source and 2 target words); "
                                "links index the words of each side from 0"),
    "jsonl past its own words": ("pred.jsonl", '{"src_words": ["a"], "tgt_words": ["c"], "links": [[0, 5, 1.0]]}\n',
                                 "0-0\n", "pred.jsonl:1: link 0-5 is past the end of its sentences "
                                 "(1 source and 1 target words); links index the words of each side from 0"),
    "jsonl negative index": ("pred.jsonl", '{"links": [[-1, 0, 0.9]]}\n', GOLD_TSV,
                             "pred.jsonl:1: 'links' must be a list of [source_word, target_word, score] with word "
                             "indices from 0; write links as wacse align --format jsonl does"),
    "jsonl links not a list": ("pred.jsonl", '{"links": 7}\n', GOLD_TSV,
                               "pred.jsonl:1: 'links' must be a list of [source_word, target_word, score] with word "
                               "indices from 0; write links as wacse align --format jsonl does"),
    "jsonl text index": ("pred.jsonl", '{"links": [["a", 0]]}\n', GOLD_TSV,
                         "pred.jsonl:1: 'links' must be a list of [source_word, target_word, score] with word "
                         "indices from 0; write links as wacse align --format jsonl does"),
    "jsonl words not lists": ("pred.jsonl", '{"src_words": "a b", "links": []}\n', GOLD_TSV,
                              "pred.jsonl:1: 'src_words' and 'tgt_words' must both be lists of words; "
                              "write them as wacse align --format jsonl does"),
    "jsonl not an object": ("pred.jsonl", '{"links": [[0, 0]]}\n"x"\n'.replace('"x"', '{'), GOLD_TSV + GOLD_TSV,
                            "pred.jsonl:2: not valid JSON; fix the line"),
    "other words than the gold": ("pred.jsonl", '{"src_words": ["ab"], "tgt_words": ["cd"], "links": [[0, 0]]}\n',
                                  GOLD_TSV, "pred.jsonl:1: 1 source and 1 target words, but line 1 of gold.tsv has 2 "
                                  "and 2; align the same words as the gold (--pretokenized, --words whitespace)"),
    "empty files": ("pred.align", "", "", "gold.tsv: the file has no lines; pass the gold alignments"),
    "no sure link": ("pred.align", "0-0\n", "0p0\n", "gold.tsv: no sure link on any line, so recall and AER are "
                     "undefined; pass gold alignments with i-j links"),
}


@pytest.mark.parametrize("case", ALIGN_CASES)
def test_eval_align_checks_links_against_the_sentences(cli, here, case):
    name, predicted, gold, message = ALIGN_CASES[case]
    Path(name).write_text(predicted)
    Path("gold.tsv").write_text(gold)
    refused(cli("eval", "align", name, "--gold", "gold.tsv"), message)


def test_eval_align_of_jsonl_against_gold_sentences(cli, here):
    Path("s.en-kk.tsv").write_text("a b c\tx y\nd e\tu v w\n")
    assert cli("align", "s.en-kk.tsv", "--aligner", "diagonal", "--format", "jsonl", "-o", "p.jsonl").exit_code == 0
    Path("gold.tsv").write_text("a b c\tx y\t0-0 1-1 2-1\nd e\tu v w\t0-0 1-2\n")  # the diagonal's own links
    result = cli("eval", "align", "p.jsonl", "--gold", "gold.tsv", "--json")
    assert result.exit_code == 0, result.output
    assert {k: json.loads(result.stdout)[k] for k in ("aer", "predicted", "sure")} == {"aer": 0.0, "predicted": 5,
                                                                                      "sure": 5}


def test_sts_needs_finite_and_varied_scores(cli, tiny_model, here):
    Path("sts.tsv").write_text("a b\tc d\t1\nx\ty\tnan\n")
    refused(cli("eval", "sts", "sts.tsv", "-m", tiny_model),
            "sts.tsv:2: score 'nan' is not a finite number; fix the line, or pass --on-bad-line skip")
    Path("sts.tsv").write_text("a b\tc d\t1\nx\ty\t-inf\n")
    refused(cli("eval", "sts", "sts.tsv", "-m", tiny_model),
            "sts.tsv:2: score '-inf' is not a finite number; fix the line, or pass --on-bad-line skip")
    Path("sts.tsv").write_text("a b\tc d\t3\nx\ty\t3.0\n")
    refused(cli("eval", "sts", "sts.tsv", "-m", tiny_model),
            "sts.tsv: every gold score is 3, so Spearman's correlation is undefined; pass pairs with different scores")
    same = unit([[1, 0], [1, 0], [1, 0]])
    with pytest.raises(WacseError, match="^the model gives every pair the same cosine"):
        sts_spearman(same, same, [1.0, 2.0, 3.0])


@pytest.fixture
def bucc(here):
    Path("src.tsv").write_text("s1\thello\ns2\tworld\ns3\tgood morning\n")
    Path("tgt.tsv").write_text("t1\tsalem\nt2\talem\nt3\tqaiyrly tan\n")


def test_mining_needs_gold_pairs_it_can_score(cli, tiny_model, bucc):
    args = ["eval", "mining", "src.tsv", "tgt.tsv", "gold.tsv", "-m", tiny_model]
    Path("gold.tsv").write_text("")
    refused(cli(*args), "gold.tsv: the file has no lines; pass a file with at least one line")
    Path("gold.tsv").write_text("s1\tt9\n")
    refused(cli(*args), "gold.tsv:1: target id 't9' is not in the target file; fix the line, "
                        "or pass --on-bad-line skip")
    refused(cli(*args, "--on-bad-line", "skip"),
            f"gold.tsv: all 1 lines were skipped; no gold pair to score against; {SKIPPED}")
    Path("gold.tsv").write_text("s1\tt1\ns2\tt2\n")
    refused(cli(*args, "--dev-fraction", "0.001"),
            "gold.tsv: none of the 2 gold pairs falls in the dev part (0% of source ids) that chooses the threshold; "
            "pass --threshold to score every pair at a fixed margin, or a larger gold file")
    refused(cli(*args, "--threshold", "nan"), "--threshold must be a finite number, not nan")
    refused(cli("mine", "src.tsv", "tgt.tsv", "-m", tiny_model, "--threshold", "inf"),
            "--threshold must be a finite number, not inf")


def test_no_threshold_found_is_none_not_inf():
    ids = [f"s{i}" for i in range(40)]
    dev, test = [i for i in ids if dev_part(i, 0.5)][:2], [i for i in ids if not dev_part(i, 0.5)][:2]
    gold = {(dev[0], "t0"), (test[0], "t1")}
    scored = [(1.3, (dev[1], "t5")), (1.2, (test[0], "t1"))]  # nothing right on the dev part
    result = mining_scores(scored, gold)
    assert (result["threshold"], result["precision"], result["recall"], result["f1"]) == (None, 0.0, 0.0, 0.0)


def test_nothing_left_after_skipping_is_an_error(cli, tiny_model, here):
    Path("bad.en-kk.tsv").write_text("a\tb\tc\n\tx\n")
    Path("blank.txt").write_text("\n\n")
    Path("a.en").write_text("hello\n")
    skip = ["--on-bad-line", "skip", "-m", tiny_model]
    refused(cli("eval", "retrieval", "bad.en-kk.tsv", *skip),
            f"bad.en-kk.tsv: all 2 lines were skipped; retrieval needs at least 2 pairs; {SKIPPED}")
    Path("one.en-kk.tsv").write_text("hello\tsalem\n\tx\n")
    refused(cli("eval", "retrieval", "one.en-kk.tsv", *skip),
            f"one.en-kk.tsv: only 1 of 2 lines are usable; retrieval needs at least 2 pairs; {SKIPPED}")
    refused(cli("search", "a.en", "--corpus", "blank.txt", *skip),
            f"blank.txt: all 2 lines were skipped; nothing to search; {SKIPPED}")
    refused(cli("search", "blank.txt", "--corpus", "a.en", *skip),
            f"blank.txt: all 2 lines were skipped; nothing to search with; {SKIPPED}")
    refused(cli("mine", "a.en", "blank.txt", *skip), f"blank.txt: all 2 lines were skipped; nothing to mine; {SKIPPED}")
    refused(cli("align", "bad.en-kk.tsv", "--aligner", "embed", "-o", "x.align", *skip),
            f"bad.en-kk.tsv: all 2 lines were skipped; nothing to align; {SKIPPED}")
    refused(cli("train", "bad.en-kk.tsv", "-r", "demo", "-o", "run", *skip),
            f"bad.en-kk.tsv: all 2 lines were skipped; nothing to train on; {SKIPPED}")
    refused(cli("train", "one.en-kk.tsv", "-r", "demo", "-o", "run", *skip),
            "1 training pair(s) in one.en-kk.tsv after the dev split; in-batch negatives need at least 2; "
            "pass more parallel text")
    assert sorted(p.name for p in here.iterdir()) == ["a.en", "bad.en-kk.tsv", "blank.txt", "one.en-kk.tsv"]


RECIPE_CASES = {
    "temperature=inf": "--set: temperature must be a finite number, not inf; fix the recipe or the --set option",
    "lr=nan": "--set: lr must be a finite number, not nan; fix the recipe or the --set option",
    "losses.tr=-inf": "--set: losses.tr must be a finite number, not -inf; fix the recipe or the --set option",
    "seed=-1": "--set: seed must be between 0 and 2**32 - 1, not -1; fix the recipe or the --set option",
    "weight_decay=-0.1": "--set: weight_decay must not be negative, not -0.1; fix the recipe or the --set option",
    "wtr_negatives=all": "--set: wtr_negatives must be sentence or batch, not 'all'; fix the recipe or the --set option",
    "steps=many": "--set: recipe field 'steps' must be int, not 'many'; fix the recipe or the --set option",
}


@pytest.mark.parametrize("setting", RECIPE_CASES)
def test_recipe_numbers_are_finite_and_in_range(cli, here, setting):
    Path("s.en-kk.tsv").write_text("a\tb\nc\td\n")
    refused(cli("train", "s.en-kk.tsv", "-r", "demo", "-m", "./no-model", "-o", "run", "--set", setting),
            RECIPE_CASES[setting])
    assert not Path("run").exists()


def test_recipe_files_that_cannot_be_read(cli, here):
    Path("s.en-kk.tsv").write_text("a\tb\nc\td\n")
    Path("latin1.toml").write_bytes(b'description = "caf\xe9"\n')
    Path("folder.toml").mkdir()
    Path("typed.toml").write_text('lr = "fast"\n')
    Path("ranged.toml").write_text('steps = 5\n\n[losses]\nwtr = -0.1\n')
    for name, message in [("latin1.toml", "latin1.toml: not valid UTF-8 (byte offset 18); "
                                          "save the recipe as UTF-8 text"),
                          ("folder.toml", "folder.toml: is a folder, not a file; pass a text file"),
                          ("typed.toml", "typed.toml:1: recipe field 'lr' must be float, not 'fast'; "
                                         "fix the recipe or the --set option"),
                          ("ranged.toml", "ranged.toml:4: losses.wtr must not be negative, not -0.1; "
                                          "fix the recipe or the --set option")]:
        refused(cli("train", "s.en-kk.tsv", "-r", name, "-m", "./no-model", "-o", "run"), message)


# ----------------------------------------------------------------------------- a training run's folder


@pytest.fixture
def train_args(tiny_model, here):
    Path("en-kk.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in demo_pairs("kk")[:60]), encoding="utf-8")
    return ["train", "en-kk.tsv", "-r", "demo", "-m", tiny_model, "-o", "run", "--set", "steps=6",
            "--set", "eval_interval=3", "--set", "batch_size=16", "--set", "chunk_size=6", "--set", "dev_size=10",
            "--set", "losses.awp=0", "--set", "losses.wtr=0"]


def stop_at(monkeypatch, calls: int, error: BaseException):
    """Make the ``calls``-th training step raise ``error``."""
    import wacse_cli.train

    real, seen = wacse_cli.train.train_step, []

    def step(*args, **kwargs):
        seen.append(1)
        if len(seen) == calls:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr("wacse_cli.train.train_step", step)


def test_a_failed_run_leaves_no_folder(cli, train_args, monkeypatch, here):
    stop_at(monkeypatch, 1, RuntimeError("boom"))
    result = cli(*train_args)
    assert result.exit_code == 1
    assert result.stderr.strip() == ("wacse: error: unexpected failure (boom); "
                                     "set WACSE_DEBUG=1 for the traceback and report it")
    assert not Path("run").exists()
    Path("run").mkdir()  # a folder the user made stays, and stays empty
    stop_at(monkeypatch, 1, KeyboardInterrupt())
    result = cli(*train_args)
    assert result.exit_code == 130 and result.stderr.strip() == "wacse: error: interrupted; no output was written"
    assert Path("run").is_dir() and not list(Path("run").iterdir())


def test_interrupted_after_a_checkpoint_resumes_with_each_step_logged_once(cli, train_args, monkeypatch):
    import wacse_cli.train

    original = wacse_cli.train.train_step
    stop_at(monkeypatch, 5, KeyboardInterrupt())  # the checkpoint of step 3 is on disk, steps 1-4 in the log
    result = cli(*train_args)
    assert result.exit_code == 130
    assert result.stderr.strip().splitlines()[-1] == ("wacse: error: interrupted; run keeps the checkpoint of step 3; "
                                     "run the same command with --resume to continue")
    stop_at(monkeypatch, 2, KeyboardInterrupt())  # resumed at 3, stopped again after step 4
    assert cli(*train_args, "--resume").exit_code == 130
    monkeypatch.setattr("wacse_cli.train.train_step", original)
    result = cli(*train_args, "--resume")
    assert result.exit_code == 0, result.output
    log = [json.loads(line) for line in Path("run/train_log.jsonl").read_text().splitlines()]
    assert [record["step"] for record in log] == [1, 2, 3, 4, 5, 6]
