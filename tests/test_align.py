"""Word alignment: words and tokens, WSPAlign's span logic on hand-written logits, SimAlign-style
matching, the metrics by hand, and ``wacse align`` / ``wacse eval align`` end to end on tiny models."""
import json
import math
import re

import numpy as np
import pytest
import torch

from wacse_cli.align import alignments_for, links_from_file, read_links, token_word_ids, word_spans, words_mode_for
from wacse_cli.align import embedding, store, wspalign
from wacse_cli.align.words import token_words, words_that_fit
from wacse_cli.errors import InputError
from wacse_cli.evaluate import alignment_scores, diagonal_links
from wacse_cli.io import read_parallel
from wacse_cli.model import load_encoder

from .conftest import SHARED, demo_pairs
from .test_bad_input import PAIR_CASES, assert_one_line_error

PHARAOH = re.compile(r"^(\d+-\d+( \d+-\d+)*)?$")


# ----------------------------------------------------------------------------- words and tokens


class PieceTokenizer:
    """Stands in for a sentencepiece tokenizer: returns the offsets of given pieces."""

    def __init__(self, pieces):
        self.pieces = pieces

    def __call__(self, sentence, **_):
        offsets, start = [], 0
        for piece in self.pieces:
            start = sentence.index(piece.lstrip("▁"), start)
            offsets.append((start, start + len(piece.lstrip("▁"))))
            start = offsets[-1][1]
        return {"offset_mapping": offsets}


def test_word_spans_modes():
    assert word_spans("  the cat  sat ") == [(2, 5), (6, 9), (11, 14)]
    assert word_spans("a b", "pretokenized") == [(0, 1), (2, 3)]
    assert word_spans("猫 が", "char") == [(0, 1), (2, 3)]
    # latin pieces join at ▁ boundaries; pieces in a script without spaces are words of their own
    tok = PieceTokenizer(["▁New", "York", "是", "大", "城市"])
    assert word_spans("NewYork 是大城市", "tokenizer", tok) == [(0, 7), (8, 9), (9, 10), (10, 12)]
    assert words_mode_for("zh") == "tokenizer" and words_mode_for("tha") == "tokenizer"
    assert words_mode_for("jv") == "whitespace" and words_mode_for("zh", pretokenized=True) == "pretokenized"


def test_token_word_ids_with_prefix_and_leading_spaces():
    sentence, prefix = "the cat sat", "query: "
    spans = word_spans(sentence)
    # <s>, "▁que", "ry:", "▁the" (offset includes the space before it), "▁c", "at", "▁sat", </s>, <pad>
    offsets = [(0, 0), (0, 3), (3, 6), (6, 10), (10, 12), (12, 14), (14, 18), (0, 0), (0, 0)]
    assert token_word_ids(offsets, spans, shift=len(prefix)) == [-1, -1, -1, 0, 1, 1, 2, -1, -1]
    # a token over two words (char mode) belongs to both; token_word_ids names the first
    assert token_words([(0, 2)], word_spans("ab", "char")) == [[0, 1]]
    assert words_that_fit([2, 1, 3], 3) == 2 and words_that_fit([2, 1], 10) == 2 and words_that_fit([4], 3) == 0


# ----------------------------------------------------------------------------- WSPAlign on hand-written logits


CONTEXT = torch.tensor([[False, False, False, False, True, True, True, False]])  # 4..6 context, 7 = </s>


def test_question_marks_the_word_even_when_repeated():
    assert wspalign.question("the cat saw the dog", (12, 15)) == "the cat saw ¶ the ¶ dog"
    assert wspalign.question("the cat", (0, 3)) == "¶ the ¶ cat"


def test_best_span_by_hand():
    e = math.e
    start = torch.tensor([[0.0, 9, 0, 0, 5, 1.5, 0, 0]])  # 9 at a question token: not allowed
    end = torch.tensor([[0.0, 0, 0, 0, 0, 1, 5, 9]])  # 9 at </s>: not allowed
    z_start, z_end = 1 + e**5 + e**1.5 + 1, 1 + 1 + e + e**5  # softmax over positions 0, 4, 5, 6
    s, t, score = wspalign.best_spans(start, end, CONTEXT)
    assert (int(s), int(t)) == (4, 6)
    assert float(score) == pytest.approx(e**5 * e**5 / (z_start * z_end), rel=1e-5)
    s, t, score = wspalign.best_spans(start, end, CONTEXT, max_span=2)  # bounded length: 5..6 wins
    assert (int(s), int(t)) == (5, 6) and float(score) == pytest.approx(e**1.5 * e**5 / (z_start * z_end), rel=1e-5)


def test_best_span_never_ends_before_it_starts_and_the_first_position_is_never_an_answer():
    start = torch.tensor([[0.0, 0, 0, 0, 0, 0, 6, 0]])
    end = torch.tensor([[0.0, 0, 0, 0, 6, 0, 0, 0]])
    s, t, _ = wspalign.best_spans(start, end, CONTEXT)
    assert int(t) >= int(s)
    start = torch.tensor([[20.0, 0, 0, 0, 1, 0, 0, 0]])  # <s> dominates the softmax but is no answer
    end = torch.tensor([[20.0, 0, 0, 0, 0, 0, 2, 0]])
    s, t, score = wspalign.best_spans(start, end, CONTEXT)
    z_start, z_end = math.exp(20) + math.e + 2, math.exp(20) + 2 + math.exp(2)
    assert (int(s), int(t)) == (4, 6) and float(score) == pytest.approx(math.e * math.exp(2) / (z_start * z_end), rel=1e-5)
    assert wspalign.best_spans(start, end, CONTEXT, max_span=20)[:2] == wspalign.best_spans(start, end, CONTEXT)[:2]
    assert wspalign.MAX_SPAN == 15


def test_words_inside_keeps_only_whole_words():
    spans = [(0, 3), (4, 7), (8, 12)]  # "the cat sits"
    assert wspalign.words_inside((4, 12), spans) == [1, 2]
    assert wspalign.words_inside((5, 12), spans) == [2]  # "at sits": word 1 is cut, so not linked
    assert wspalign.words_inside((5, 6), spans) == []


def test_combine_adds_backward_scores_to_forward_pairs_only():
    # "the cat saw the dog": the two "the" (words 0 and 3) are scored apart
    forward = {(0, 0): 0.9, (3, 2): 0.4, (1, 1): 0.95}
    backward = {(0, 0): 0.7, (3, 2): 0.45, (4, 3): 0.99}  # (4, 3): backward only, never kept
    assert wspalign.combine(forward, backward) == [(0, 0, 1.6), (1, 1, 0.95), (3, 2, 0.85)]
    assert wspalign.combine({}, {(0, 0): 1.0}) == []


def test_aligner_splits_a_span_score_over_its_words_and_keeps_sums_above_threshold(monkeypatch):
    """End to end on scripted spans: forward 'a'->'x y' (0.9, split 0.45 each), backward 'x'->'a'
    (0.8) and 'y'->'b' (0.99, not proposed forward); at 0.9, only a-x (0.45 + 0.8) passes."""
    aligner = wspalign.WSPAligner.__new__(wspalign.WSPAligner)
    aligner._fit = lambda pairs, spans: spans
    answers = [(0, 0, 0, [0, 1], 0.9), (0, 1, 0, [0], 0.8), (0, 1, 1, [1], 0.99)]
    aligner._answers = lambda queries, n, advance: iter(answers)
    links = aligner.align([("a b", "x y")], [([(0, 1), (2, 3)], [(0, 1), (2, 3)])])
    assert links == [[(0, 0, 1.25), (0, 1, 0.45)]]
    assert [link for link in links[0] if link[2] >= 0.9] == [(0, 0, 1.25)]


# ----------------------------------------------------------------------------- SimAlign-style matching


def test_argmax_itermax_and_scores():
    sim = np.array([[0.9, 0.8, 0.1], [0.85, 0.2, 0.1], [0.1, 0.2, 0.3]])
    # rows argmax: 0->0, 1->0, 2->2; columns argmax: 0->0, 1->0, 2->2: mutual 0-0 and 2-2
    assert list(zip(*np.nonzero(embedding.mutual_argmax(sim)))) == [(0, 0), (2, 2)]
    # round 2 (row 1 and column 1 free): 1-1 keeps 0.2, pairs with one free side get x0.9, others 0:
    # rows [0 .72 0], [.765 .2 .09], [0 .18 0]: row argmax 0->1 1->0 2->1; column argmax 0->1 1->0 2->1
    # so 0-1 and 1-0 are mutual and join
    assert list(zip(*np.nonzero(embedding.itermax(sim)))) == [(0, 0), (0, 1), (1, 0), (2, 2)]
    assert embedding.link_scores(np.array([[0.3]]))[0, 0] == pytest.approx(1.0)
    scores = embedding.link_scores(np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert scores[0, 0] > 0.99 and scores[0, 1] < 0.01
    assert embedding.distorted(np.ones((2, 3)), 0.5).tolist() == [[1, 0.875, 0.5], [0.5, 0.875, 1]]


# ----------------------------------------------------------------------------- metrics and files


def test_alignment_scores_by_hand(tmp_path, cli):
    # S = {0:0-0, 0:1-1, 1:0-1}; P adds 0:2-2, 1:1-0. A = 0:{0-0 1-2 2-2}, 1:{0-1 1-0 1-1}
    # |A|=6 |S|=3 |A&S|=2 |A&P|=4: P=4/6 R=2/3 F1=2/3 AER=1-6/9
    pred, gold = tmp_path / "pred.align", tmp_path / "gold.align"
    pred.write_text("0-0 1-2 2-2\n0-1 1-0 1-1\n")
    gold.write_text("0-0 1-1 2p2\n0-1 1p0\n")
    expected = {"precision": 4 / 6, "recall": 2 / 3, "f1": 2 / 3, "aer": 1 / 3}
    result = cli("eval", "align", pred, "--gold", gold, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {k: data[k] for k in expected} == pytest.approx(expected)
    one, tsv = tmp_path / "gold1.align", tmp_path / "gold.tsv"
    one.write_text("1-1 2-2 3p3\n1-2 2p1\n")
    tsv.write_text("a b c\tx y z\t0-0 1-1 2p2\nd e\tu v\t0-1 1p0\n")
    for args in ([one, "--gold-one-index"], [tsv]):
        again = json.loads(cli("eval", "align", pred, "--gold", *args, "--json").stdout)
        assert {k: again[k] for k in expected} == pytest.approx(expected)
    assert cli("eval", "align", pred, "--gold", gold).stdout.splitlines()[-1] == "aer\t0.3333"
    assert alignment_scores(set(), set()) == pytest.approx({"precision": 0, "recall": 0, "f1": 0, "aer": 0,
                                                            "predicted": 0, "sure": 0, "possible": 0})
    assert diagonal_links(2, 4) == [(0, 1), (1, 3)] and diagonal_links(3, 3) == [(0, 0), (1, 1), (2, 2)]


def test_bad_gold_and_mismatched_files(cli, tmp_path):
    pred, gold = tmp_path / "pred.align", tmp_path / "gold.align"
    pred.write_text("0-0\n1-1\n")
    gold.write_text("0-0\n1x1\n")
    assert_one_line_error(cli("eval", "align", pred, "--gold", gold), f"{gold}:2", "'1x1' is not a link like 3-4")
    gold.write_text("0-0\n")
    assert_one_line_error(cli("eval", "align", pred, "--gold", gold), str(pred), "has 2 lines but")
    gold.write_text("0-0\n1-1\n")
    assert_one_line_error(cli("eval", "align", pred, "--gold", gold, "--gold-one-index"), f"{gold}:1",
                          "'0-0' has index 0")


def test_pharaoh_lines_and_user_alignment_files(tmp_path):
    assert store.pharaoh_line([(2, 0, 0.9), (0, 3, 1.0), (0, 1, 0.95)]) == "0-1 0-3 2-0"
    assert store.pharaoh_line(None) == ""
    path = tmp_path / "user.align"
    path.write_text("0-0 1-1\n\n0-1\n")
    assert links_from_file(str(path), [(2, 2), None, (1, 2)]) == [[(0, 0, 1.0), (1, 1, 1.0)], None, [(0, 1, 1.0)]]
    with pytest.raises(InputError, match=r"user.align:3: link 0-1 is past the end"):
        links_from_file(str(path), [(2, 2), (1, 1), (1, 1)])
    with pytest.raises(InputError, match="has 3 lines but the parallel text has 2"):
        links_from_file(str(path), [(2, 2), (1, 1)])
    assert read_links(str(path))[0] == ({(0, 0), (1, 1)}, set())


# ----------------------------------------------------------------------------- end to end, tiny models


@pytest.fixture(scope="module")
def tiny_qa(tmp_path_factory) -> str:
    from wacse_cli.tiny import build_tiny_model

    sentences = [s for pair in demo_pairs("kk") + demo_pairs("jv") for s in pair]
    return str(build_tiny_model(tmp_path_factory.mktemp("qa") / "wspalign-tiny", sentences, vocab_size=600,
                                question_answering=True))


@pytest.fixture
def pairs20(tmp_path):
    path = tmp_path / "en-kk.tsv"
    path.write_text("".join(f"{a}\t{b}\n" for a, b in demo_pairs("kk")[40:60]), encoding="utf-8")
    return path


def check_pharaoh(path, pairs):
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]
    assert len(lines) == len(pairs)
    for line, (src, tgt) in zip(lines, pairs):
        assert PHARAOH.match(line), line
        links = [tuple(map(int, item.split("-"))) for item in line.split()]
        assert links == sorted(set(links))
        assert all(i < len(src.split()) and j < len(tgt.split()) for i, j in links)
    return lines


def test_wspalign_end_to_end(cli, tiny_qa, pairs20, tmp_path, monkeypatch):
    monkeypatch.setattr(wspalign, "_noticed", set())
    out, again, jsonl = tmp_path / "a.align", tmp_path / "b.align", tmp_path / "a.jsonl"
    result = cli("align", pairs20, "-m", tiny_qa, "--threshold", "0", "-o", out, "--batch-size", "7")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("CC-BY-NC-SA-4.0") == 1
    lines = check_pharaoh(out, demo_pairs("kk")[40:60])
    assert sum(len(line.split()) for line in lines) > 0
    assert not (tmp_path / "a.align.partial").exists()
    result = cli("align", pairs20, "-m", tiny_qa, "--threshold", "0", "-o", again, "--no-cache", "--batch-size", "3")
    assert result.exit_code == 0 and again.read_bytes() == out.read_bytes()  # deterministic, any batch size
    result = cli("align", pairs20, "-m", tiny_qa, "--threshold", "0", "--format", "jsonl", "-o", jsonl)
    records = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in records] == list(range(1, 21))
    first_src, first_tgt = demo_pairs("kk")[40]
    assert records[0]["src_words"] == first_src.split() and records[0]["tgt_words"] == first_tgt.split()
    assert [" ".join(f"{i}-{j}" for i, j, _ in r["links"]) for r in records] == lines
    assert all(0 <= s <= 1 for r in records for _, _, s in r["links"])


def test_cache_is_found_again(cli, tiny_qa, pairs20, tmp_path, wacse_home, monkeypatch):
    out = tmp_path / "a.align"
    assert cli("align", pairs20, "-m", tiny_qa, "--threshold", "0", "-o", out).exit_code == 0
    assert len(list((wacse_home / "alignments").glob("*.jsonl"))) == 1
    monkeypatch.setattr(wspalign.WSPAligner, "align", lambda *a, **k: pytest.fail("aligned again"))
    result = cli("align", pairs20, "-m", tiny_qa, "--threshold", "0", "-o", tmp_path / "b.align", "--json")
    assert json.loads(result.stdout)["from_cache"] is True
    assert (tmp_path / "b.align").read_bytes() == out.read_bytes()
    links = alignments_for(read_parallel(str(pairs20)), aligner="wspalign", model=tiny_qa, threshold=0.0,
                           progress=False)
    assert [store.pharaoh_line(line) for line in links] == out.read_text().splitlines()


def test_killed_run_resumes_to_identical_output(cli, tiny_qa, pairs20, tmp_path, monkeypatch):
    import wacse_cli.align as align_module

    reference = tmp_path / "reference.align"
    assert cli("align", pairs20, "-m", tiny_qa, "--threshold", "0", "--no-cache", "-o", reference).exit_code == 0
    monkeypatch.setattr(align_module, "CHUNK_LINES", 6)  # 20 lines: 4 chunks
    real_append, real_align = store.Journal.append, wspalign.WSPAligner.align
    calls = []

    def append_then_die(self, index, links):
        if len(self.chunks) == 2:
            raise KeyboardInterrupt  # killed while the third chunk is being written
        real_append(self, index, links)

    monkeypatch.setattr(store.Journal, "append", append_then_die)
    out = tmp_path / "out.align"
    result = cli("align", pairs20, "-m", tiny_qa, "--threshold", "0", "-o", out)
    assert result.exit_code == 130 and not out.exists() and (tmp_path / "out.align.partial").exists()
    monkeypatch.setattr(store.Journal, "append", real_append)
    monkeypatch.setattr(wspalign.WSPAligner, "align",
                        lambda self, *a, **k: calls.append(1) or real_align(self, *a, **k))
    result = cli("align", pairs20, "-m", tiny_qa, "--threshold", "0", "-o", out)
    assert result.exit_code == 0 and "(resumed)" in result.stderr
    assert len(calls) == 2  # only the two chunks that were not finished
    assert out.read_bytes() == reference.read_bytes()
    assert not (tmp_path / "out.align.partial").exists()


def test_long_sentences_are_truncated_with_a_warning(cli, tiny_qa, tiny_model, tmp_path):
    words = " ".join(a for a, _ in demo_pairs("kk")[:40]).split()
    path = tmp_path / "en-kk.tsv"
    path.write_text(f"{' '.join(words[:60])}\t{' '.join(words[60:100])}\nshort one\tқысқа\n", encoding="utf-8")
    for args in (["-m", tiny_qa], ["--aligner", "embed", "-m", tiny_model]):
        out = tmp_path / "out.align"
        result = cli("align", path, *args, "--max-length", "24", "--threshold", "0", "-o", out, "--no-cache")
        assert result.exit_code == 0, result.output
        assert re.search(r"warning: [12] sentence\(s\) longer than the model's maximum \(24 tokens\)", result.stderr)
        assert len(out.read_text().splitlines()) == 2


def test_embed_aligner_with_a_loaded_encoder_and_prefix(cli, tiny_model, pairs20, tmp_path):
    out = tmp_path / "e.align"
    result = cli("align", pairs20, "--aligner", "embed", "-m", tiny_model, "--prefix", "query: ", "--threshold", "0",
                 "-o", out, "--no-cache", "--batch-size", "5")
    assert result.exit_code == 0, result.output
    lines = check_pharaoh(out, demo_pairs("kk")[40:60])
    encoder = load_encoder(tiny_model, prefix="query: ")
    links = alignments_for(read_parallel(str(pairs20)), aligner="embed", model=encoder, threshold=0.0,
                           progress=False, use_cache=False)
    assert [store.pharaoh_line(line) for line in links] == lines
    assert all(line for line in lines)  # itermax links every pair at threshold 0
    # stopping at the layer gives the same states as running every layer
    batch, backbone = encoder.tokenize(["a test sentence"]), encoder.backbone.eval()
    with torch.no_grad():
        full = backbone(**batch, output_hidden_states=True).hidden_states[1]
        torch.testing.assert_close(embedding.layer_states(backbone, 1, **batch), full)


def test_default_aligner_offline_says_what_to_do(cli, pairs20, tmp_path):
    result = cli("align", pairs20, "-o", tmp_path / "x.align")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "wacse: error: cannot load the WSPAlign model: model 'qiyuw/WSPAlign-xlm-base' is not in the Hugging Face "
        "cache and HF_HUB_OFFLINE is set; download it once with network access, or align offline with any encoder: "
        "--aligner embed -m MODEL"
    ]


@pytest.mark.parametrize("case", PAIR_CASES)
def test_align_bad_pairs(cli, tiny_model, tmp_path, case):
    content, line, message = PAIR_CASES[case]
    path = tmp_path / "en-kk.tsv"
    path.write_bytes(content)
    out = tmp_path / "out.align"
    result = cli("align", path, "--aligner", "embed", "-m", tiny_model, "-o", out)
    assert_one_line_error(result, f"{path}:{line}", message)
    assert [p.name for p in tmp_path.iterdir()] == ["en-kk.tsv"]


def test_bad_options(cli, tiny_model, pairs20):
    for args, message in (
        (["--threshold", "1.5"], "--threshold must be between 0 and 1"),
        (["--format", "csv"], "--format must be pharaoh or jsonl"),
        (["--layer", "9"], "--layer must be between 0 and 2"),
        (["--words", "morphemes"], "unknown word mode 'morphemes'"),
    ):
        result = cli("align", pairs20, "--aligner", "embed", "-m", tiny_model, *args)
        assert result.exit_code == 2 and message in result.stderr, result.output
    result = cli("align", pairs20, "--aligner", "embed")
    assert result.exit_code == 2 and "--aligner embed needs --model" in result.stderr


# ----------------------------------------------------------------------------- real data (slow)


@pytest.mark.slow
def test_grc_en_embed_beats_the_diagonal(cli, tmp_path):
    """e5-small (built by ../shared/tools/make_e5_small.py into ../e5-small) on 500 Greek-English verses."""
    gold, e5 = SHARED / "data/gold-align/grc-en.tsv", SHARED.parent / "e5-small"
    if not e5.exists():
        pytest.skip(f"no {e5}: build it with ../shared/tools/make_e5_small.py")
    pairs = tmp_path / "grc-en.tsv"
    rows = gold.read_text("utf-8").splitlines()
    pairs.write_text("".join("\t".join(r.split("\t")[:2]) + "\n" for r in rows), "utf-8")
    scores = {}
    aligners = {"embed": ["--aligner", "embed", "-m", e5, "--prefix", "query: "], "diagonal": ["--aligner", "diagonal"],
                "ibm1": ["--aligner", "embed", "-m", e5, "--prefix", "query: ", "--prior", "ibm1"]}
    for name, args in aligners.items():
        out = tmp_path / f"{name}.align"
        assert cli("align", pairs, *args, "--threshold", "0", "-o", out).exit_code == 0
        scores[name] = json.loads(cli("eval", "align", out, "--gold", gold, "--json").stdout)
        # an independent AER: count links by hand from the two files
        predicted = [set(line.split()) for line in out.read_text().split("\n")[:-1]]
        sure = [set(row.split("\t")[2].split()) for row in rows]
        hits = sum(len(p & s) for p, s in zip(predicted, sure))
        total = sum(len(p) for p in predicted) + sum(len(s) for s in sure)
        assert scores[name]["aer"] == pytest.approx(1 - 2 * hits / total)
    assert scores["embed"]["aer"] < scores["diagonal"]["aer"] - 0.1
    assert scores["ibm1"]["aer"] < scores["embed"]["aer"] - 0.1  # measured: 0.453 against 0.583


def test_default_threshold_depends_on_the_aligner(cli, tiny_qa, pairs20, tmp_path):
    """WSPAlign's span probabilities are cut at 0.9 (as WACSE does); IterMax already chose its links."""
    def threshold(*args) -> float:
        result = cli("align", pairs20, *args, "-o", tmp_path / f"{args[1]}.align", "--json", "--no-cache")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["threshold"]

    assert threshold("--aligner", "embed", "-m", tiny_qa, "--layer", "1") == 0.0
    assert threshold("--aligner", "wspalign", "-m", tiny_qa) == 0.9
    assert threshold("--aligner", "embed", "-m", tiny_qa, "--layer", "1", "--threshold", "0.5") == 0.5
