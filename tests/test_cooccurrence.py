"""The IBM Model 1 prior of the embedding aligner: EM by hand, the mixed link scores, the options."""
import numpy as np
import pytest

from wacse_cli.align import alignments_for, embedding
from wacse_cli.align.cooccurrence import CooccurrencePrior, TranslationTable, normal_form
from wacse_cli.io import read_parallel

from .test_align import pairs20  # noqa: F401  (the fixture)


def test_one_em_iteration_by_hand():
    # corpus ("a b" -> "x y"), ("a" -> "x"); from a uniform table, iteration 1 gives
    # t(x|NULL) = t(x|a) = 5/7, t(y|NULL) = t(y|a) = 2/7, t(x|b) = t(y|b) = 1/2, so in pair 1
    # P(a|x) = (5/7) / (5/7 + 5/7 + 1/2) = 10/27, P(b|x) = 7/27, P(a|y) = 4/15, P(b|y) = 7/15
    table = TranslationTable([["a", "b"], ["a"]], [["x", "y"], ["x"]], iterations=1)
    assert table.posterior(["a", "b"], ["x", "y"]) == pytest.approx(np.array([[10 / 27, 4 / 15], [7 / 27, 7 / 15]]))
    assert table.posterior(["a", "unseen"], ["x", "unseen"])[:, 1].tolist() == [0.0, 0.0]


def test_em_learns_which_words_translate_each_other():
    pairs = [(["open", "file"], ["ашу", "файл"][::-1]), (["open", "folder"], ["бума", "ашу"]),
             (["save", "file"], ["файл", "сақтау"]), (["file"], ["файл"])]
    prior = CooccurrencePrior(pairs, iterations=10)
    to_target, to_source = prior.probabilities(["Open", "File:"], ["файл", "ашу"])  # case and punctuation ignored
    assert to_target.argmax(axis=1).tolist() == [1, 0]   # open -> ашу, file -> файл
    assert to_source.argmax(axis=0).tolist() == [1, 0]
    assert (to_target.sum(axis=1) <= 1 + 1e-9).all() and (to_source.sum(axis=0) <= 1 + 1e-9).all()
    assert normal_form("«Файл»,") == "файл" and normal_form("...") == "..."


def test_mixed_link_scores_by_hand():
    sim = np.array([[0.3]])
    prior = (np.array([[0.5]]), np.array([[0.25]]))
    # one word each side: both softmaxes are 1, mixed halfway: sqrt(0.75 * 0.625)
    assert embedding.link_scores(sim, prior=prior)[0, 0] == pytest.approx(np.sqrt(0.75 * 0.625))
    assert embedding.link_scores(sim, prior=prior, prior_weight=0.0)[0, 0] == pytest.approx(1.0)
    # the prior can change which links are chosen: the encoder prefers 0-0 and 1-1, the corpus 0-1 and 1-0
    cos = np.array([[0.2, 0.1], [0.1, 0.2]])
    crossed = (np.array([[0.0, 1.0], [1.0, 0.0]]),) * 2
    assert [link[:2] for link in embedding.word_links(cos, distortion=0)] == [(0, 0), (1, 1)]
    assert [link[:2] for link in embedding.word_links(cos, distortion=0, prior=crossed)] == [(0, 1), (1, 0)]


def test_prior_is_an_option_of_the_embed_aligner(cli, tiny_model, pairs20, tmp_path):
    text = read_parallel(str(pairs20))
    plain = alignments_for(text, aligner="embed", model=tiny_model, threshold=0.0, progress=False, use_cache=False)
    mixed = alignments_for(text, aligner="embed", model=tiny_model, threshold=0.0, progress=False, use_cache=False,
                           prior="ibm1")
    assert plain != mixed and all(mixed)
    result = cli("align", pairs20, "--aligner", "diagonal", "--prior", "ibm1", "-o", tmp_path / "d.align")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("wacse: error: --prior is for --aligner embed; leave --prior out, "
                                     "or use --aligner embed")
    result = cli("align", pairs20, "--aligner", "embed", "-m", tiny_model, "--prior", "giza", "-o", tmp_path / "e.align")
    assert result.exit_code == 2 and "unknown alignment prior 'giza'" in result.stderr
    assert not (tmp_path / "e.align").exists()
