"""Each loss against a value worked out by hand on tiny tensors."""
import math

import torch

from wacse_cli import losses as L


def test_translation_ranking_by_hand():
    src = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tgt = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # cosines [[1, .6], [0, .8]] / tau=.5 -> logits [[2, 1.2], [0, 1.6]]
    forward = (math.log1p(math.exp(-0.8)) + math.log1p(math.exp(-1.6))) / 2
    backward = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-0.4))) / 2
    assert math.isclose(L.translation_ranking(src, tgt, 0.5, symmetric=False).item(), forward, rel_tol=1e-6)
    assert math.isclose(L.translation_ranking(src, tgt, 0.5).item(), (forward + backward) / 2, rel_tol=1e-6)
    # scaling a vector does not change a cosine loss
    assert math.isclose(L.translation_ranking(src * 3, tgt, 0.5).item(), (forward + backward) / 2, rel_tol=1e-6)


def test_aligned_word_prediction_by_hand():
    logits = torch.tensor([[0.0, 0.0, 0.0], [math.log(4), 0.0, 0.0], [0.0, math.log(2), 0.0]])
    targets = torch.tensor([1, 0, 1])
    pair_index = torch.tensor([0, 0, 1])
    # token losses: ln 3, -ln(4/6) = ln 1.5, -ln(2/4) = ln 2; pair 0 averages its two tokens
    pair0, pair1 = (math.log(3) + math.log(1.5)) / 2, math.log(2)
    assert math.isclose(L.aligned_word_prediction(logits, targets, pair_index, 2).item(), (pair0 + pair1) / 2, rel_tol=1e-6)
    assert math.isclose(L.aligned_word_prediction(logits, targets, pair_index, 2, normalizer=4).item(),
                        (pair0 + pair1) / 4, rel_tol=1e-6)


def test_word_translation_ranking_by_hand():
    query = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    candidates = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    positive = torch.tensor([0, 1])
    # pair 0: logits [1, 0] (third word absent) -> ln(1 + e^-1)
    # pair 1: cosines [0, 1, 1/sqrt 2] -> -ln(e / (1 + e + e^0.7071))
    p0 = math.log1p(math.exp(-1))
    p1 = -math.log(math.e / (1 + math.e + math.exp(1 / math.sqrt(2))))
    assert math.isclose(L.word_translation_ranking(query, candidates, mask, positive, 1.0).item(), (p0 + p1) / 2,
                        rel_tol=1e-6)


def test_batch_word_translation_ranking_by_hand():
    query = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    candidates = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, 0.0]])
    excluded = torch.tensor([[False, False, False, True], [False, False, False, False]])
    positive = torch.tensor([0, 1])
    # pair 0: cosines [1, 0, 1/sqrt 2], the 4th left out -> -ln(e / (e + 1 + e^0.7071))
    # pair 1: cosines [0, 1, 1/sqrt 2, 0] -> -ln(e / (1 + e + e^0.7071 + 1))
    r = math.exp(1 / math.sqrt(2))
    p0, p1 = -math.log(math.e / (math.e + 1 + r)), -math.log(math.e / (2 + math.e + r))
    value = L.batch_word_translation_ranking(query, candidates, excluded, positive, 1.0, normalizer=4).item()
    assert math.isclose(value, (p0 + p1) / 4, rel_tol=1e-6)


def test_multiway_is_the_mean_of_pairwise_tr():
    torch.manual_seed(0)
    vectors = torch.randn(4, 3, 5)
    present = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 1], [1, 1, 1]], dtype=torch.bool)
    by_hand = []
    for a, b in ((0, 1), (0, 2), (1, 2)):
        rows = [n for n in range(4) if present[n, a] and present[n, b]]
        by_hand.append(L.translation_ranking(vectors[rows, a], vectors[rows, b], 0.05).item())
    assert math.isclose(L.multiway_ranking(vectors, present, 0.05).item(), sum(by_hand) / 3, rel_tol=1e-6)


def test_representation_translation_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3), 0.0]])
    targets = torch.tensor([0, 0])
    # ln 2 and -ln(3/4)
    assert math.isclose(L.representation_translation(logits, targets).item(), (math.log(2) + math.log(4 / 3)) / 2,
                        rel_tol=1e-6)
