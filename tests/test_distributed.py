"""Two processes on the CPU (gloo) give the gradients of one process with the full batch, and a
torchrun-style training run writes from rank 0 only."""
import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from wacse_cli.data import Example, encode_examples, encode_rows, make_batch, make_multiway_batch
from wacse_cli.demo import multiway_demo_file
from wacse_cli.distributed import Ranks
from wacse_cli.gradcache import WacseObjective, multiway_step, train_step
from wacse_cli.io import read_multiway
from wacse_cli.model import load_encoder
from wacse_cli.recipe import Losses, load_recipe
from wacse_cli.checkpoints import complete_checkpoints
from wacse_cli.train import LOG_FILE, Trainer

from .conftest import demo_pairs
from .test_gradcache import links_for

WORLD = 2
WEIGHTS = {"tr": 0.8, "awp": 0.1, "wtr": 0.1}


def float64_encoder(model: str):
    encoder = load_encoder(model, with_mlm_head=True).double()
    encoder.eval()  # no dropout: one process and two must see the same network
    return encoder


def pair_batch(encoder):
    pairs = demo_pairs("ka")[:8]
    examples = [Example(a, b, "en", "ka", links_for(a, b)) for a, b in pairs]
    encoded = encode_examples(examples, encoder.tokenizer, "", 32, ["en", "ka"])
    return make_batch(encoded, encoder.tokenizer.pad_token_id, np.random.default_rng(0))


def multiway_rows(encoder, rank: int = 0, world: int = 1):
    table = read_multiway(multiway_demo_file())
    rows = table.rows[:8]
    encoded = encode_rows(rows, table.langs, encoder.tokenizer, "", 32, [])
    share = len(encoded) // world
    return make_multiway_batch(encoded[rank * share:(rank + 1) * share], encoder.tokenizer.pad_token_id)


def step_gradients(encoder, ranks: Ranks, kind: str, chunk_size: int) -> dict[str, torch.Tensor]:
    encoder.zero_grad(set_to_none=True)
    if kind == "pairs":
        objective = WacseObjective(encoder, Losses(**WEIGHTS), ranks=ranks)
        result = train_step(objective, pair_batch(encoder), chunk_size)
    else:
        objective = WacseObjective(encoder, Losses(tr=1, awp=0, wtr=0), ranks=ranks)
        result = multiway_step(objective, multiway_rows(encoder, ranks.rank, ranks.world), chunk_size)
    ranks.sum_gradients([p for p in encoder.parameters() if p.requires_grad])
    grads = {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}
    return {"grads": grads, "loss": [result.total, result.tr, result.awp, result.wtr]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gradient_worker(rank: int, model: str, store: str, kind: str, chunk_size: int, out: str):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        result = step_gradients(float64_encoder(model), Ranks(rank, WORLD), kind, chunk_size)
        torch.save(result, f"{out}.{rank}")
        dist.barrier()  # gloo can abort a process whose peer is still connected
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("kind,chunk_size", [("pairs", 4), ("pairs", 3), ("multiway", 5)])
def test_two_processes_give_the_full_batch_gradients(tiny_model, tmp_path, kind, chunk_size):
    """chunk 4 = one chunk per rank (the plain pass), 3 = GradCache within each rank; multi-way
    rows gather their grid across the ranks."""
    out = tmp_path / "grads"
    mp.spawn(_gradient_worker, args=(tiny_model, str(tmp_path / "store"), kind, chunk_size, str(out)),
             nprocs=WORLD, join=True)
    single = step_gradients(float64_encoder(tiny_model), Ranks(), kind, chunk_size=64)
    for rank in range(WORLD):
        distributed = torch.load(f"{out}.{rank}")
        assert distributed["grads"].keys() == single["grads"].keys() and len(single["grads"]) > 10
        if kind == "pairs":
            assert any(name.startswith("mlm_head") for name in single["grads"])  # AWP took part
        for name, grad in single["grads"].items():
            torch.testing.assert_close(distributed["grads"][name], grad, rtol=1e-6, atol=1e-9, msg=name)
        assert distributed["loss"] == pytest.approx(single["loss"], rel=1e-9)


def _training_worker(rank: int, model: str, data: str, out: str, port: int, steps: int, resume: bool):
    torch.set_num_threads(1)
    os.environ.update(WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), TQDM_DISABLE="1")
    recipe = load_recipe("demo", [f'model="{model}"', "steps=3", "batch_size=8", "chunk_size=2", "eval_interval=1",
                                  "dev_size=8"])
    try:
        Trainer(recipe, out, files=[data], resume=resume, progress=False, stop_after=steps).run()
        dist.barrier()  # as wacse train's finish() does after a completed run
    finally:
        dist.destroy_process_group()


def test_torchrun_style_training_writes_from_rank_zero_and_resumes(tiny_model, pairs_file, tmp_path):
    out = tmp_path / "run"
    mp.spawn(_training_worker, args=(tiny_model, str(pairs_file), str(out), _free_port(), 2, False), nprocs=WORLD)
    assert [c.name for c in complete_checkpoints(out)] == ["step-0000001", "step-0000002"]
    state = torch.load(complete_checkpoints(out)[-1] / "state.pt", weights_only=False)
    assert len(state["rng"]["ranks"]) == WORLD  # each rank's dropout generator, for an exact resume
    assert not (out / "wacse.json").exists()
    mp.spawn(_training_worker, args=(tiny_model, str(pairs_file), str(out), _free_port(), None, True), nprocs=WORLD)
    log = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]  # one writer: no line twice
    assert json.loads((out / "wacse.json").read_text())["training"]["steps"] == 3
