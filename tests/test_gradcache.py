"""GradCache gives the gradients of one full-batch step; a zero weight removes its loss's gradient."""
import numpy as np
import pytest
import torch

from wacse_cli.data import Example, encode_examples, make_batch
from wacse_cli.gradcache import RandomState, WacseObjective, train_step
from wacse_cli.model import load_encoder
from wacse_cli.recipe import Losses
from wacse_cli.rtl import RtlDecoder

from .conftest import demo_pairs


def links_for(src: str, tgt: str) -> list[tuple[int, int]]:
    n, m = len(src.split()), len(tgt.split())
    return [(i, min(i, m - 1)) for i in range(n)]


@pytest.fixture(scope="module")
def setup(tiny_model):
    encoder = load_encoder(tiny_model, with_mlm_head=True).double()
    encoder.eval()  # no dropout: the full batch and the chunks must see the same network
    pairs = demo_pairs("ka")[:8]
    examples = [Example(a, b, "en", "ka", links_for(a, b)) for a, b in pairs]
    encoded = encode_examples(examples, encoder.tokenizer, "", 32, ["en", "ka"])
    batch = make_batch(encoded, encoder.tokenizer.pad_token_id, np.random.default_rng(0))
    assert len(batch.pairs.rows) == sum(len(p.links) for p in encoded) > 8
    return encoder, batch


def gradients(encoder, batch, weights: Losses, chunk_size: int, decoder=None) -> dict[str, torch.Tensor]:
    """The gradients of the encoder's parameters (and of the RTL decoder's, named rtl.*)."""
    encoder.zero_grad(set_to_none=True)
    named = list(encoder.named_parameters()) + (list(decoder.named_parameters("rtl")) if decoder else [])
    if decoder is not None:
        decoder.zero_grad(set_to_none=True)
    train_step(WacseObjective(encoder, weights, decoder=decoder), batch, chunk_size)
    return {n: p.grad.clone() for n, p in named if p.grad is not None}


@pytest.fixture(scope="module")
def decoder(setup):
    return RtlDecoder.from_encoder(setup[0])


@pytest.mark.parametrize("chunk_size", [1, 3, 5])
def test_gradcache_equals_the_full_batch(setup, chunk_size):
    """One chunk: AWP's masked copies ride along in the sentences' pass; chunks encode them apart."""
    encoder, batch = setup
    weights = Losses(tr=0.8, awp=0.1, wtr=0.1)
    full = gradients(encoder, batch, weights, chunk_size=len(batch))
    chunked = gradients(encoder, batch, weights, chunk_size=chunk_size)
    assert full.keys() == chunked.keys() and len(full) > 10
    for name in full:
        torch.testing.assert_close(chunked[name], full[name], rtol=1e-6, atol=1e-9, msg=name)


@pytest.mark.parametrize("chunk_size", [2, 5])
def test_gradcache_equals_the_full_batch_with_rtl(setup, decoder, chunk_size):
    encoder, batch = setup
    weights = Losses(tr=0.8, awp=0.1, wtr=0.1, rtl=0.1)
    full = gradients(encoder, batch, weights, len(batch), decoder)
    chunked = gradients(encoder, batch, weights, chunk_size, decoder)
    assert full.keys() == chunked.keys() and any(name.startswith("rtl.") for name in full)
    for name in full:
        torch.testing.assert_close(chunked[name], full[name], rtol=1e-6, atol=1e-9, msg=name)


def test_rtl_at_weight_zero_leaves_the_other_gradients_unchanged(setup, decoder):
    encoder, batch = setup
    others = Losses(tr=0.8, awp=0.1, wtr=0.1, rtl=0.0)
    without = gradients(encoder, batch, others, 3)
    with_zero = gradients(encoder, batch, others, 3, decoder)
    assert with_zero.keys() == without.keys()  # no decoder gradient at all
    for name, grad in without.items():
        torch.testing.assert_close(with_zero[name], grad, rtol=0, atol=0, msg=name)
    only_rtl = gradients(encoder, batch, Losses(tr=0, awp=0, wtr=0, rtl=1.0), 3, decoder)
    everything = gradients(encoder, batch, Losses(tr=0.8, awp=0.1, wtr=0.1, rtl=0.1), 3, decoder)
    for name, grad in everything.items():
        expected = without.get(name, 0) + 0.1 * only_rtl.get(name, 0)
        torch.testing.assert_close(grad, expected + torch.zeros_like(grad), rtol=1e-6, atol=1e-9, msg=name)


def test_a_zero_weight_removes_that_gradient(setup):
    encoder, batch = setup
    only = {k: gradients(encoder, batch, Losses(**{n: float(n == k) for n in ("tr", "awp", "wtr", "rtl")}), 3)
            for k in ("tr", "awp", "wtr")}
    no_awp = gradients(encoder, batch, Losses(tr=0.8, awp=0.0, wtr=0.1), 3)
    assert not any(name.startswith("mlm_head") for name in no_awp)
    for name, grad in no_awp.items():
        expected = 0.8 * only["tr"].get(name, 0) + 0.1 * only["wtr"].get(name, 0)
        torch.testing.assert_close(grad, expected + torch.zeros_like(grad), rtol=1e-6, atol=1e-9)
    no_tr_wtr = gradients(encoder, batch, Losses(tr=0.0, awp=0.1, wtr=0.0), 3)
    for name, grad in no_tr_wtr.items():
        torch.testing.assert_close(grad, 0.1 * only["awp"][name], rtol=1e-6, atol=1e-9)


def test_dropout_is_replayed_exactly(tiny_model):
    encoder = load_encoder(tiny_model)
    encoder.train()
    batch = encoder.tokenize(["a small test", "another one here"])
    state = RandomState([])
    with state.replay():
        first, _ = encoder(batch["input_ids"], batch["attention_mask"])
    with state.replay():
        second, _ = encoder(batch["input_ids"], batch["attention_mask"])
    torch.rand(1)  # move the generator on: without replay, dropout differs
    third, _ = encoder(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert not torch.allclose(first, third)


def test_both_sides_in_one_pass_give_the_same_gradients(setup):
    """The GPU default (X and Y padded together, one forward) against one pass per side."""
    encoder, batch = setup
    weights = Losses(tr=0.8, awp=0.1, wtr=0.1)

    def grads(joint: bool, chunk_size: int):
        encoder.zero_grad(set_to_none=True)
        train_step(WacseObjective(encoder, weights, joint_sides=joint), batch, chunk_size)
        return {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}

    separate = grads(False, len(batch))
    assert batch.x.ids.shape[1] != batch.y.ids.shape[1]  # the two sides really are padded differently
    for chunk_size in (len(batch), 3):
        joint = grads(True, chunk_size)
        assert joint.keys() == separate.keys()
        for name, grad in separate.items():
            torch.testing.assert_close(joint[name], grad, rtol=1e-6, atol=1e-9, msg=name)
