"""Training on several processes: ``torchrun --nproc-per-node N -m wacse_cli train ...``.

Every rank builds the same global batch (same sampler, same seed) and trains on its share of
it, rows ``[rank * n, (rank + 1) * n)``. The sentence vectors of all ranks are gathered *with
their gradients* (``torch.distributed.nn.all_gather``), so TR's in-batch negatives are the
global batch, exactly as in one process. AWP, WTR and RTL involve one sentence pair at a time
(WTR's negatives are the other words of the same pair), so each rank computes its pairs' terms
with the global batch's normaliser and nothing else needs gathering.

Each rank back-propagates its share of the global loss, TR / world + its own word-level terms,
and the parameter gradients are summed over the ranks once per step, after the last GradCache
chunk. That is what DistributedDataParallel does (an all-reduce of the gradients) with
``no_sync`` on every chunk but the last; the objective is not wrapped in DDP because it calls the
encoder through several entry points (sentences, masked words, the MLM head, the RTL decoder),
and DDP's reducer only follows calls made through the wrapper's ``forward``.

Only rank 0 evaluates, writes checkpoints, logs and the model folder; every rank reads the
checkpoint on ``--resume`` (a shared filesystem for multi-node runs).
"""
from __future__ import annotations

import datetime
import os
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

BUCKET_ELEMENTS = 1 << 25  # gradients are summed in flat buckets of this many numbers


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes (``world == 1``: a plain run)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def shard(self, n: int) -> tuple[int, int]:
        """This rank's rows of a global batch of ``n`` (which the caller made divisible by ``world``)."""
        size = n // self.world
        return self.rank * size, (self.rank + 1) * size

    def gather(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        """Each tensor concatenated over the ranks along dim 0, gradients flowing back to every rank's part."""
        if not self.active:
            return tensors
        from torch.distributed.nn.functional import all_gather

        with warnings.catch_warnings():  # torch 2.13 deprecates it in favour of a private module; it still works
            warnings.simplefilter("ignore", FutureWarning)
            return tuple(torch.cat(all_gather(t.contiguous())) for t in tensors)

    def gather_constant(self, tensor: Tensor) -> Tensor:
        """Like ``gather`` for a tensor that needs no gradient (masks, counts)."""
        if not self.active:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world)]
        torch.distributed.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Numbers summed over the ranks (the loss terms reported for the whole batch)."""
        if not self.active:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def sum_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Sum ``.grad`` over the ranks in flat buckets. A parameter some rank left without a gradient
        counts as zeros there, so every rank takes part in the same all-reduce whatever its loss
        terms touched; one no rank touched keeps no gradient (AdamW skips it, as in one process)."""
        if not self.active:
            return
        touched = torch.tensor([p.grad is not None for p in params], dtype=torch.uint8, device=params[0].device)
        torch.distributed.all_reduce(touched, op=torch.distributed.ReduceOp.MAX)
        params = [p for p, t in zip(params, touched.tolist()) if t]  # untouched everywhere: stays None, as in one process
        for param in params:
            if param.grad is None:
                param.grad = torch.zeros_like(param)
        for bucket in _buckets(params):
            flat = torch.cat([p.grad.reshape(-1) for p in bucket])
            torch.distributed.all_reduce(flat)
            offset = 0
            for p in bucket:
                p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
                offset += p.numel()

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def all_gather_object(self, value) -> list:
        if not self.active:
            return [value]
        out = [None] * self.world
        torch.distributed.all_gather_object(out, value)
        return out

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Rank 0's weights and buffers on every rank (new heads and embeddings start identical)."""
        if not self.active:
            return
        with torch.no_grad():
            for tensor in list(module.parameters()) + list(module.buffers()):
                torch.distributed.broadcast(tensor.data, 0)


def _buckets(params: list[torch.nn.Parameter]):
    bucket, size = [], 0
    for p in params:
        if bucket and (size + p.numel() > BUCKET_ELEMENTS or p.grad.dtype != bucket[0].grad.dtype):
            yield bucket
            bucket, size = [], 0
        bucket.append(p)
        size += p.numel()
    if bucket:
        yield bucket


SINGLE = Ranks()
_OWN_GROUP = False  # whether from_environment started the process group (and finish should end it)


def from_environment(device: str) -> Ranks:
    """The ranks torchrun describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``); joins the process group
    (NCCL on CUDA, gloo on the CPU) unless the caller already did. No torchrun: a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    global _OWN_GROUP
    if not torch.distributed.is_initialized():
        _OWN_GROUP = True
        backend = "nccl" if device.startswith("cuda") else "gloo"
        minutes = float(os.environ.get("WACSE_DIST_TIMEOUT_MIN", "120"))  # rank 0 aligns and evaluates alone
        torch.distributed.init_process_group(backend, timeout=datetime.timedelta(minutes=minutes))
    return Ranks(torch.distributed.get_rank(), torch.distributed.get_world_size(), local_rank)


def finish(completed: bool = False) -> None:
    """End the process group this module started (torchrun warns about one left open). After a
    ``completed`` run the ranks first wait for each other: gloo can abort a process whose peer is
    still connected (rank 0 writes the model while the others are done); after a failure they don't,
    as the failed rank will never arrive."""
    global _OWN_GROUP
    if _OWN_GROUP and torch.distributed.is_initialized():
        if completed:
            torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    _OWN_GROUP = False
