"""Checkpoints that hold everything needed to continue a run exactly: model, optimizer, scheduler,
sampler position and every random state; written to a temporary folder, then renamed into place."""
from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .distributed import SINGLE, Ranks
from .recipe import Recipe

CHECKPOINTS = "checkpoints"
COMPLETE = "COMPLETE"


# ----------------------------------------------------------------------------- checkpoints


@dataclass
class TrainState:
    step: int = 0
    nonfinite_in_a_row: int = 0
    nonfinite_total: int = 0
    best_step: int = -1
    best_score: float = -1.0
    dev_before: dict = field(default_factory=dict)
    dev_history: list = field(default_factory=list)
    head_warmup: dict = field(default_factory=dict)  # the MLM head warm-up's report, when there was one


def torch_rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def rng_state(link_rng: np.random.Generator, ranks_torch: list[dict] | None = None) -> dict:
    """Every generator; ``ranks_torch``: each rank's torch (dropout) state, kept when there are several."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "links": link_rng.bit_generator.state,
             **torch_rng_state()}
    if ranks_torch and len(ranks_torch) > 1:
        state["ranks"] = ranks_torch
    return state


def set_rng_state(state: dict, link_rng: np.random.Generator, ranks: Ranks = SINGLE) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    link_rng.bit_generator.state = state["links"]
    own = state["ranks"][ranks.rank] if len(state.get("ranks", [])) == ranks.world else state
    torch.set_rng_state(own["torch"])
    if "cuda" in own and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(own["cuda"])


def checkpoint_dir(out: Path, step: int) -> Path:
    return out / CHECKPOINTS / f"step-{step:07d}"


def save_checkpoint(out: Path, encoder, optimizer, scheduler, sampler, link_rng, state: TrainState, recipe: Recipe,
                    decoder: torch.nn.Module | None = None, ranks_torch: list[dict] | None = None):
    """Write to a temporary folder, flush, mark complete, then rename into place (the RTL decoder,
    when there is one, goes with the model: resuming needs it, the exported folder does not)."""
    final = checkpoint_dir(out, state.step)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    payload = {
        "model": encoder.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "sampler": sampler.state_dict(), "rng": rng_state(link_rng, ranks_torch), "state": state.__dict__,
        "recipe": recipe.to_dict(), "wacse_version": __version__,
    }
    if decoder is not None:
        payload["rtl"] = decoder.state_dict()
    with open(tmp / "state.pt", "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    (tmp / COMPLETE).write_text(f"{state.step}\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _prune_checkpoints(out, keep={state.step, state.best_step})


def _prune_checkpoints(out: Path, keep: set[int]) -> None:
    """Keep the best and the last checkpoint."""
    for folder in (out / CHECKPOINTS).glob("step-*"):
        if folder.name.endswith(".tmp") or int(folder.name.split("-")[1]) not in keep:
            shutil.rmtree(folder, ignore_errors=True)


def complete_checkpoints(out: Path) -> list[Path]:
    folders = [f for f in (out / CHECKPOINTS).glob("step-*") if (f / COMPLETE).exists() and not f.name.endswith(".tmp")]
    return sorted(folders, key=lambda f: int(f.name.split("-")[1]))


def load_checkpoint(folder: Path) -> dict:
    return torch.load(folder / "state.pt", map_location="cpu", weights_only=False)
