"""AWP and WTR over every aligned word pair of a sentence, both directions, / 2N (paper Eq. 4-8),
checked against a computation assembled by hand from the encoder's own outputs."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wacse_cli.data import Example, encode_examples, make_batch, mask_group_of, word_vectors
from wacse_cli.gradcache import WacseObjective
from wacse_cli.model import load_encoder
from wacse_cli.recipe import Losses

PAIRS = [  # two sentence pairs with several links each, one of them one-to-many
    Example("the new window opens", "жаңа терезе ашылады", "en", "kk", [(1, 0), (2, 1), (3, 2)]),
    Example("save all files now", "барлық файлдарды қазір сақтау", "en", "kk", [(0, 3), (1, 0), (2, 1), (3, 2), (2, 0)]),
]


@pytest.fixture(scope="module")
def encoder(tiny_model):
    encoder = load_encoder(tiny_model, with_mlm_head=True).double()
    encoder.eval()
    return encoder


def batch_for(encoder, mask_groups: int, seed: int = 0):
    encoded = encode_examples(PAIRS, encoder.tokenizer, "", 32, ["en", "kk"])
    return make_batch(encoded, encoder.tokenizer.pad_token_id, np.random.default_rng(seed), mask_groups)


def test_every_link_is_listed_with_disjoint_mask_groups(encoder):
    batch = batch_for(encoder, mask_groups=2)
    links = list(zip(batch.pairs.rows.tolist(), batch.pairs.src_word.tolist(), batch.pairs.tgt_word.tolist()))
    assert links == [(0, 1, 0), (0, 2, 1), (0, 3, 2), (1, 0, 3), (1, 1, 0), (1, 2, 1), (1, 3, 2), (1, 2, 0)]
    groups = dict(zip(zip(batch.pairs.rows.tolist(), batch.pairs.src_word.tolist()), batch.pairs.src_group.tolist()))
    assert set(groups.values()) == {0, 1}  # a word keeps one group, whatever its number of links
    assert sorted(mask_group_of([5, 2, 2, 9], 0, np.random.default_rng(1)).values()) == [0, 1, 2]
    assert sorted(mask_group_of([5, 2, 9], 2, np.random.default_rng(1)).values()) == [0, 0, 1]


def word_tokens(side, row: int, word: int) -> list[int]:
    return (side.words[row] == word).nonzero().flatten().tolist()


def awp_by_hand(encoder, batch) -> float:
    """Sum over links and directions of the mean subtoken cross-entropy, each prediction made on a
    copy of the sentence with the word's whole mask group masked; / 2N."""
    p, total = batch.pairs, 0.0
    for side, other, word, other_word, group in ((batch.x, batch.y, p.src_word, p.tgt_word, p.src_group),
                                                 (batch.y, batch.x, p.tgt_word, p.src_word, p.tgt_group)):
        for n in range(len(p.rows)):
            row = int(p.rows[n])
            ids = side.ids[row].clone()
            for m in range(len(p.rows)):  # every word of this row's group is masked in the copy
                if int(p.rows[m]) == row and int(group[m]) == int(group[n]):
                    ids[word_tokens(side, row, int(word[m]))] = encoder.tokenizer.mask_token_id
            mine, theirs = word_tokens(side, row, int(word[n])), word_tokens(other, row, int(other_word[n]))
            k = min(len(mine), len(theirs))
            with torch.no_grad():
                states = encoder.token_states(ids[None], side.mask[row][None])[0]
                logits = encoder.mlm_logits(states[mine[:k]])
            total += F.cross_entropy(logits, other.ids[row, theirs[:k]]).item()
    return total / (2 * len(batch))


@pytest.mark.parametrize("mask_groups", [0, 1, 2])
def test_awp_sums_every_pair_both_directions_over_2n(encoder, mask_groups):
    batch = batch_for(encoder, mask_groups)
    objective = WacseObjective(encoder, Losses(tr=0, awp=1, wtr=0))
    with torch.no_grad():
        value = objective.awp(batch, normalizer=2 * len(batch)).item()
    assert math.isclose(value, awp_by_hand(encoder, batch), rel_tol=1e-9)


def test_one_word_a_copy_masks_only_that_word(encoder):
    """mask_groups=0 is the paper's scheme: the copy for x_j has x_j's subtokens masked, nothing else."""
    batch = batch_for(encoder, mask_groups=0)
    groups = batch.pairs.src_group[batch.pairs.rows == 1]
    words = batch.pairs.src_word[batch.pairs.rows == 1]
    for word in set(words.tolist()):  # one group per distinct word
        assert len(set(groups[words == word].tolist())) == 1
    assert len(set(groups.tolist())) == len(set(words.tolist())) == 4


def wtr_by_hand(encoder, batch, temperature: float) -> float:
    p, total = batch.pairs, 0.0
    with torch.no_grad():
        x_states = encoder.token_states(batch.x.ids, batch.x.mask)
        y_states = encoder.token_states(batch.y.ids, batch.y.mask)
    for n in range(len(p.rows)):
        row, j, k = int(p.rows[n]), int(p.src_word[n]), int(p.tgt_word[n])
        for states, side, other_states, other, word, positive in ((x_states, batch.x, y_states, batch.y, j, k),
                                                                  (y_states, batch.y, x_states, batch.x, k, j)):
            query = states[row, word_tokens(side, row, word)].mean(0)
            n_words = int(other.words[row].max()) + 1
            keys = torch.stack([other_states[row, word_tokens(other, row, w)].mean(0) for w in range(n_words)])
            logits = F.cosine_similarity(query[None], keys) / temperature
            total += -torch.log_softmax(logits, 0)[positive].item()
    return total / (2 * len(batch))


def test_wtr_sums_every_pair_both_directions_over_2n(encoder):
    batch = batch_for(encoder, mask_groups=2)
    objective = WacseObjective(encoder, Losses(tr=0, awp=0, wtr=1), temperature=0.5)
    with torch.no_grad():
        x_states = encoder.token_states(batch.x.ids, batch.x.mask)
        y_states = encoder.token_states(batch.y.ids, batch.y.mask)
        value = objective.wtr(batch, x_states, y_states, normalizer=2 * len(batch)).item()
    assert math.isclose(value, wtr_by_hand(encoder, batch, 0.5), rel_tol=1e-9)


REPEATED = PAIRS + [  # "терезе" and "ашылады" again: copies of a positive that must not be its negatives
    Example("open the window", "терезе ашылады", "en", "kk", [(0, 1), (2, 0)]),
]


def batch_wtr_by_hand(encoder, batch, temperature: float) -> float:
    """Each pair's word against every word of every sentence on the other side, leaving out the
    other sentences' words with the positive's very subtokens; / 2N."""
    p, total = batch.pairs, 0.0
    with torch.no_grad():
        states = {"x": encoder.token_states(batch.x.ids, batch.x.mask),
                  "y": encoder.token_states(batch.y.ids, batch.y.mask)}
    sides = {"x": batch.x, "y": batch.y}

    def words_of(name):  # [(row, word, subtoken ids, vector)]
        side, out = sides[name], []
        for row in range(len(side.ids)):
            for w in range(int(side.words[row].max()) + 1):
                tokens = word_tokens(side, row, w)
                out.append((row, w, side.ids[row, tokens].tolist(), states[name][row, tokens].mean(0)))
        return out

    for n in range(len(p.rows)):
        row, j, k = int(p.rows[n]), int(p.src_word[n]), int(p.tgt_word[n])
        for mine, theirs, word, positive in (("x", "y", j, k), ("y", "x", k, j)):
            query = states[mine][row, word_tokens(sides[mine], row, word)].mean(0)
            candidates = words_of(theirs)
            gold = next(c for c in candidates if c[:2] == (row, positive))
            kept = [c for c in candidates if c is gold or c[2] != gold[2]]
            logits = torch.stack([F.cosine_similarity(query, c[3], 0) for c in kept]) / temperature
            total += -torch.log_softmax(logits, 0)[kept.index(gold)].item()
    return total / (2 * len(batch))


def test_batch_wtr_takes_every_word_of_the_batch_but_the_positives_copies(encoder):
    encoded = encode_examples(REPEATED, encoder.tokenizer, "", 32, ["en", "kk"])
    batch = make_batch(encoded, encoder.tokenizer.pad_token_id, np.random.default_rng(0), 2)
    objective = WacseObjective(encoder, Losses(tr=0, awp=0, wtr=1), temperature=0.5, wtr_negatives="batch")
    with torch.no_grad():
        x_states = encoder.token_states(batch.x.ids, batch.x.mask)
        y_states = encoder.token_states(batch.y.ids, batch.y.mask)
        value = objective.wtr(batch, x_states, y_states, normalizer=2 * len(batch)).item()
    assert math.isclose(value, batch_wtr_by_hand(encoder, batch, 0.5), rel_tol=1e-9)
    sentence_only = WacseObjective(encoder, Losses(tr=0, awp=0, wtr=1), temperature=0.5)
    with torch.no_grad():
        assert sentence_only.wtr(batch, x_states, y_states, normalizer=2 * len(batch)).item() < value


def test_word_vectors_average_subtokens():
    states = torch.arange(12, dtype=torch.float64).reshape(1, 4, 3)
    words = torch.tensor([[-1, 0, 0, 1]])
    vectors, exists = word_vectors(states, words)
    torch.testing.assert_close(vectors[0, 0], torch.tensor([4.5, 5.5, 6.5], dtype=torch.float64))
    assert exists.tolist() == [[True, True]]


def test_awp_rows_masks_a_share_and_scales_it_to_the_batch(encoder):
    """awp_rows=0.5 of two sentences: AWP over the one drawn sentence's pairs only, times 2 (the
    batch over the sentences masked), so that it estimates the whole batch's AWP."""
    encoded = encode_examples(PAIRS, encoder.tokenizer, "", 32, ["en", "kk"])
    batch = make_batch(encoded, encoder.tokenizer.pad_token_id, np.random.default_rng(3), 0, awp_rows=0.5)
    chosen = batch.pairs.src_group >= 0
    masked_rows = set(batch.pairs.rows[chosen].tolist())
    assert len(masked_rows) == 1 and batch.awp_scale == 2.0
    assert (batch.pairs.tgt_group[~chosen] == -1).all() and len(batch.pairs.rows) == 8  # WTR keeps every pair
    only = type(batch)(batch.x, batch.y, type(batch.pairs)(*(t[chosen] for t in batch.pairs._fields())))
    objective = WacseObjective(encoder, Losses(tr=0, awp=1, wtr=0))
    with torch.no_grad():
        value = objective.awp(batch, normalizer=4).item()
    assert math.isclose(value, 2 * awp_by_hand(encoder, only), rel_tol=1e-9)
    assert make_batch(encoded, 1, np.random.default_rng(3), 0).awp_scale == 1.0


def test_awp_candidates_are_the_whole_vocabularys_logits_at_those_rows(encoder):
    from wacse_cli.mlm_head import candidate_tokens

    states = torch.randn(5, encoder.hidden_size, dtype=torch.float64)
    targets = torch.tensor([7, 3, 7, 11, 250])
    candidates, index = candidate_tokens(targets, encoder.mlm_head.decoder().out_features, 16,
                                         torch.Generator().manual_seed(0))
    assert len(candidates) <= 16 and torch.equal(candidates[index], targets)
    full = encoder.mlm_logits(states)
    torch.testing.assert_close(encoder.mlm_head.logits(states, candidates), full[:, candidates])
    # AWP against the candidates: the cross-entropy of the targets among those rows only
    restricted = F.cross_entropy(full[:, candidates], index)
    assert restricted.item() < F.cross_entropy(full, targets).item()
