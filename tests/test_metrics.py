"""Metrics against values worked out by hand on small fixed vectors."""
import numpy as np
import pytest

from wacse_cli.evaluate import average_ranks, best_threshold, mining_scores, retrieval_accuracy, spearman
from wacse_cli.search import mine, search, topk_cosine


def unit(rows):
    a = np.asarray(rows, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_retrieval_p_at_1_by_hand():
    src = unit([[1, 0], [0, 1], [1, 1]])
    tgt = unit([[1, 0.1], [1, 0.2], [1, 1.1]])
    # src0 -> tgt0 (right); src1 -> tgt2 (wrong); src2 -> tgt2 (right): 2/3
    # tgt0 -> src0 (right); tgt1 -> src0 (wrong); tgt2 -> src2 (right): 2/3
    scores = retrieval_accuracy(src, tgt)
    assert scores == {"src2tgt": pytest.approx(2 / 3), "tgt2src": pytest.approx(2 / 3), "mean": pytest.approx(2 / 3)}


def test_ties_go_to_the_lowest_index():
    src = unit([[1, 0], [1, 0]])
    assert retrieval_accuracy(src, src)["src2tgt"] == 0.5  # both rows retrieve row 0


def test_topk_is_exact_across_tiles():
    rng = np.random.default_rng(0)
    q, c = unit(rng.normal(size=(7, 5))), unit(rng.normal(size=(23, 5)))
    scores, idx = topk_cosine(q, c, 3, tile=4)
    full = q @ c.T
    np.testing.assert_array_equal(idx, np.argsort(-full, axis=1)[:, :3])
    np.testing.assert_allclose(scores, np.sort(full, axis=1)[:, ::-1][:, :3], rtol=1e-6)


def test_margin_by_hand():
    # cosines: x0.y0=0.9 x0.y1=0.5 ; x1.y0=0.6 x1.y1=0.8 (2-d unit vectors chosen to give these)
    x = unit([[1, 0], [0, 1]])
    y = np.array([[0.9, 0.6], [0.5, 0.8]], dtype=np.float32)  # not unit: cosines are x @ y.T
    cos = x @ y.T
    np.testing.assert_allclose(cos, [[0.9, 0.5], [0.6, 0.8]], rtol=1e-6)
    # k=1: nn mean of x0 = 0.9, x1 = 0.8; of y0 = 0.9, y1 = 0.8
    # margin(x0,y0) = 0.9 / ((0.9 + 0.9)/2) = 1 ; margin(x1,y0) = 0.6 / ((0.8+0.9)/2) = 0.70588
    scores, idx = search(x, y, 2, score="margin", neighbours=1)
    assert idx.tolist() == [[0, 1], [1, 0]]
    assert scores[0].tolist() == pytest.approx([1.0, 0.5 / 0.85])
    assert scores[1].tolist() == pytest.approx([1.0, 0.6 / 0.85])


def test_mining_is_greedy_one_to_one():
    x = unit([[1, 0], [0.9, 0.1], [0, 1]])
    y = unit([[1, 0.05], [0, 1]])
    pairs = mine(x, y, k=1)
    assert [(p.src, p.tgt) for p in pairs] == [(0, 0), (2, 1)]  # x1 loses y0 to x0
    assert all(p.score == pytest.approx(1.0) for p in pairs)
    assert mine(x, y, k=1, threshold=1.5) == []


def test_best_threshold_by_hand():
    scored = [(1.3, ("a", "1")), (1.2, ("b", "9")), (1.1, ("c", "3")), (1.0, ("d", "4"))]
    gold = {("a", "1"), ("c", "3"), ("d", "4"), ("e", "5")}
    # cut after 1: P=1 R=.25 F=.4 ; after 3: P=2/3 R=.5 F=.5714 ; after 4: P=.75 R=.75 F=.75
    best = best_threshold(scored, gold)
    assert (best.precision, best.recall, best.f1, best.threshold) == pytest.approx((0.75, 0.75, 0.75, 1.0))
    given = mining_scores(scored, gold, threshold=1.15)
    assert (given["precision"], given["recall"]) == pytest.approx((0.5, 0.25))


def test_spearman_with_ties_by_hand():
    assert average_ranks([10, 20, 20, 30]).tolist() == [1, 2.5, 2.5, 4]
    # ranks a = [1, 2.5, 2.5, 4], b = [1, 2, 3, 4]; centred: [-1.5, 0, 0, 1.5], [-1.5, -.5, .5, 1.5]
    # sum of products 4.5; sqrt(4.5 * 5) = 4.7434 -> 0.948683
    assert spearman([10, 20, 20, 30], [1, 2, 3, 4]) == pytest.approx(4.5 / np.sqrt(22.5))
