"""The training loop: data and alignments in, a model folder out.

AdamW with linear warm-up and decay, gradient clipping, bf16 autocast (on GPUs, and on CPUs with
bf16 instructions, where it halves the step time), dev evaluation every ``eval_interval`` steps
(and before the first), checkpoints (``checkpoints``) and an output folder that transformers,
sentence-transformers and wacse all load. What the run reads is prepared in ``training_data``.

Under ``torchrun`` the same loop runs on every rank over its share of each global batch; only
rank 0 evaluates and writes (see ``distributed``).
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import __version__
from .checkpoints import (TrainState, checkpoint_dir, complete_checkpoints, load_checkpoint, save_checkpoint,
                          set_rng_state, torch_rng_state)
from .data import BatchSampler, EncodedPair, EncodedRow, make_batch, make_multiway_batch
from .distributed import SINGLE, Ranks, from_environment
from .embed import encode
from .errors import UsageError, WacseError
from .evaluate import retrieval_accuracy
from .gradcache import WacseObjective, multiway_step, train_step
from .head_warmup import warm_up_head
from .model import SentenceEncoder, load_encoder
from .progress import progress_bar
from .recipe import Recipe, validate_recipe
from .run_folder import EXPORT_TMP, LOG_FILE, RECIPE_FILE, after_failure, check_run_folder, trim_log
from .run_recipe import recipe_as_run
from .training_data import DevSet, TrainingData, encode_training_data, load_training_data

MAX_NONFINITE_IN_A_ROW = 100


class TrainingStopped(WacseError):
    """Training cannot go on (too many non-finite losses in a row)."""


# ----------------------------------------------------------------------------- model and optimiser


def build_encoder(recipe: Recipe, languages: list[str], device: str) -> SentenceEncoder:
    encoder = load_encoder(
        recipe.model, pooling=recipe.pooling, prefix=recipe.prefix, max_length=recipe.eval_max_length, device=device,
        with_mlm_head=bool(recipe.losses.awp or recipe.losses.rtl), fresh_head=recipe.mlm_warmup_steps > 0,
        lang_embedding_for=languages if recipe.lang_embedding else None,
    )
    if recipe.freeze_embeddings:
        encoder.backbone.get_input_embeddings().weight.requires_grad_(False)
    return encoder


def build_objective(encoder: SentenceEncoder, recipe: Recipe, ranks: Ranks = SINGLE) -> WacseObjective:
    """The recipe's losses on ``encoder``; with ``losses.rtl`` it holds the RTL decoder."""
    return WacseObjective(encoder, recipe.losses, temperature=recipe.temperature, symmetric=recipe.tr_symmetric,
                          autocast=autocast_dtype(recipe.precision, encoder.device), ranks=ranks,
                          rtl_both_directions=recipe.rtl_both_directions, awp_candidates=recipe.awp_candidates,
                          rtl_candidates=recipe.rtl_candidates, wtr_negatives=recipe.wtr_negatives)


def build_optimizer(encoder: SentenceEncoder, recipe: Recipe, decoder: torch.nn.Module | None = None):
    """AdamW over the encoder's trainable parameters (and the RTL decoder's), warm-up then linear decay."""
    decay, no_decay = [], []
    named = list(encoder.named_parameters()) + (list(decoder.named_parameters("rtl")) if decoder is not None else [])
    for name, param in named:
        if param.requires_grad:
            (no_decay if param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe.lr,
    )
    warmup = max(1, int(recipe.warmup * recipe.steps)) if recipe.warmup > 0 else 0

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (recipe.steps - step) / max(1, recipe.steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX-512 BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast for ``precision="bf16"``, or for ``"auto"`` where the hardware runs it fast."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if device.type == "cpu" and cpu_has_bf16() else None


# ----------------------------------------------------------------------------- evaluation


def evaluate_dev(encoder: SentenceEncoder, dev: list[DevSet], batch_size: int = 128) -> dict:
    """P@1 both directions per language pair (the ``wacse eval retrieval`` computation)."""
    results = {}
    for d in dev:
        lang = lambda code: code if encoder.lang_embedding is not None else None  # noqa: E731
        src = encode(encoder, [p[0] for p in d.pairs], batch_size=batch_size, lang=lang(d.src_lang), progress=False)
        tgt = encode(encoder, [p[1] for p in d.pairs], batch_size=batch_size, lang=lang(d.tgt_lang), progress=False)
        texts = {"src_texts": [p[0] for p in d.pairs], "tgt_texts": [p[1] for p in d.pairs]}
        results[d.name] = {**retrieval_accuracy(src, tgt, **texts), "n_pairs": len(d.pairs)}
    mean = sum(r["mean"] for r in results.values()) / len(results) if results else float("nan")
    return {"pairs": results, "mean": mean}


# ----------------------------------------------------------------------------- the run


@dataclass
class TrainResult:
    output: Path
    steps: int
    dev_before: dict
    dev_after: dict
    best_step: int
    wall_time_s: float
    nonfinite_steps: int


class Trainer:
    """Owns one training run in ``out``."""

    def __init__(self, recipe: Recipe, out: str | Path, *, files: list[str] | None = None, resume: bool = False,
                 on_bad_line: str = "error", progress: bool = True, stop_after: int | None = None,
                 on_step: Callable[[int, dict], None] | None = None, langs: str | None = None,
                 src_tgt: tuple[str, str] | None = None, on_note: Callable[[str], None] | None = None):
        self.recipe, self.out, self.files = recipe, Path(out), files
        self.on_note = on_note  # one-line messages for the user (the head warm-up's result)
        self.langs, self.src_tgt, self.skipped_lines = langs, src_tgt, 0
        self.resume, self.on_bad_line, self.progress = resume, on_bad_line, progress
        self.stop_after = stop_after  # for tests: stop (as if interrupted) after this many steps
        self.on_step = on_step
        self.ranks = SINGLE
        validate_recipe(recipe)

    def _prepare_output(self) -> None:
        check_run_folder(self.out, self.resume)
        self._created = not self.out.exists()  # from here on, a failed run cleans up after itself
        self.ranks.barrier()  # every rank has checked the folder before rank 0 writes into it

    def _start_ranks(self) -> str:
        """The device, and this process's ranks (torchrun) with one GPU per local rank."""
        recipe = self.recipe
        device = "cuda" if recipe.device == "auto" and torch.cuda.is_available() else ("cpu" if recipe.device == "auto" else recipe.device)
        self.ranks = from_environment(device)
        if not self.ranks.active:
            return device
        if recipe.batch_size % self.ranks.world:
            raise UsageError(f"batch_size {recipe.batch_size} does not split evenly over {self.ranks.world} processes",
                             hint=f"--set batch_size={recipe.batch_size // self.ranks.world * self.ranks.world}")
        if device == "cuda":
            device = f"cuda:{self.ranks.local_rank}"
            torch.cuda.set_device(device)
        return device

    def run(self) -> TrainResult:
        """Train; a failure before the first checkpoint leaves no files behind (see ``run_folder``)."""
        self._created = None
        try:
            return self._run()
        except BaseException as exc:
            if self._created is not None and self.ranks.is_main:
                after_failure(self.out, self._created, exc)
            raise

    def _run(self) -> TrainResult:
        started = time.time()
        recipe = self.recipe
        torch.manual_seed(recipe.seed)
        random.seed(recipe.seed)
        np.random.seed(recipe.seed)
        device = self._start_ranks()
        ranks = self.ranks
        data = load_training_data(recipe, self.files, self.on_bad_line, langs=self.langs, src_tgt=self.src_tgt)
        self.skipped_lines = sum(len(t.skipped) for t in data.texts)
        self._prepare_output()
        encoder = build_encoder(recipe, data.languages, device)
        objective = build_objective(encoder, recipe, ranks)
        if ranks.active:
            ranks.broadcast_parameters(encoder)
            if objective.decoder is not None:
                ranks.broadcast_parameters(objective.decoder)
            torch.manual_seed(recipe.seed + ranks.rank)  # each rank its own dropout
        encoded = self._encode(data, encoder)
        optimizer, scheduler = build_optimizer(encoder, recipe, objective.decoder)
        sampler = BatchSampler(len(encoded), recipe.batch_size, recipe.seed)
        link_rng = np.random.default_rng(recipe.seed)
        state = TrainState()
        if self.resume:
            state = self._restore(encoder, optimizer, scheduler, sampler, link_rng, objective.decoder)
            if ranks.is_main:
                trim_log(self.out, state.step)
        else:
            state.head_warmup = self._warm_up_head(encoder, encoded)
        if not self.resume and ranks.is_main:
            state.dev_before = evaluate_dev(encoder, data.dev)
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / RECIPE_FILE).write_text(recipe_as_run(recipe, data, bool(self.src_tgt)), encoding="utf-8")
        self._loop(encoder, encoded, optimizer, scheduler, sampler, link_rng, state, data, objective)
        ranks.barrier()
        if not ranks.is_main or (self.stop_after is not None and state.step < recipe.steps):
            return TrainResult(self.out, state.step, state.dev_before, {}, state.best_step, time.time() - started,
                               state.nonfinite_total)
        return self._export(encoder, state, data, alignments_used(recipe), time.time() - started, len(encoded))

    def _encode(self, data: TrainingData, encoder: SentenceEncoder):
        """Tokenised examples; under torchrun rank 0 aligns (and fills the alignment cache) before the
        other ranks read the cache, so the work is done once."""
        ranks = self.ranks
        if not ranks.is_main:
            ranks.barrier()
        encoded = encode_training_data(data, self.recipe, encoder, self.progress and ranks.is_main)
        if ranks.is_main:
            ranks.barrier()
        return encoded

    def _warm_up_head(self, encoder: SentenceEncoder, encoded: list[EncodedPair]) -> dict:
        """Train a fresh MLM head (a model saved without one) before AWP uses it; every rank the
        same head (rank 0's)."""
        head = encoder.mlm_head
        if head is None or head.trained:
            return {}
        recipe = self.recipe
        sentences = [side for pair in encoded for side in (pair.src, pair.tgt)]
        report = warm_up_head(encoder, sentences, steps=recipe.mlm_warmup_steps, batch_size=recipe.chunk_size,
                              candidates=recipe.awp_candidates, seed=recipe.seed,
                              progress=self.progress and self.ranks.is_main)
        if self.ranks.active:
            self.ranks.broadcast_parameters(encoder)
        if self.on_note and self.ranks.is_main:
            self.on_note(report.line())
        return report.to_dict()

    def _restore(self, encoder, optimizer, scheduler, sampler, link_rng, decoder=None) -> TrainState:
        folder = complete_checkpoints(self.out)[-1]
        saved = load_checkpoint(folder)
        saved["recipe"] = {**Recipe().to_dict(), **saved["recipe"]}  # fields added since then: their defaults
        if saved["recipe"] != self.recipe.to_dict():
            changed = [k for k in saved["recipe"] if saved["recipe"][k] != self.recipe.to_dict().get(k)]
            raise UsageError(f"the recipe differs from the checkpoint's ({', '.join(changed)})",
                             hint="resume with the same recipe and --set options")
        encoder.load_state_dict(saved["model"])
        if decoder is not None:
            decoder.load_state_dict(saved["rtl"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        sampler.load_state_dict(saved["sampler"])
        set_rng_state(saved["rng"], link_rng, self.ranks)
        return TrainState(**saved["state"])

    def _loop(self, encoder, encoded: list[EncodedPair] | list[EncodedRow], optimizer, scheduler, sampler, link_rng,
              state, data, objective: WacseObjective):
        recipe, ranks = self.recipe, self.ranks
        pad_id = encoder.tokenizer.pad_token_id
        bar = progress_bar(total=recipe.steps, initial=state.step, desc="training", unit="step",
                   disable=not (self.progress and ranks.is_main))
        encoder.train()
        if objective.decoder is not None:
            objective.decoder.train()
        window = time.time()
        with open(self.out / LOG_FILE, "a", encoding="utf-8") if ranks.is_main else open(os.devnull, "w") as log:
            while state.step < recipe.steps:
                if self.stop_after is not None and state.step >= self.stop_after:
                    break
                chosen = [encoded[i] for i in sampler.next()]
                if data.multiway:  # this rank's rows; the step gathers every rank's vectors
                    chosen = chosen[slice(*ranks.shard(len(chosen)))] if ranks.active else chosen
                    batch = make_multiway_batch(chosen, pad_id).to(encoder.device)
                else:  # the global batch (its word pairs drawn as in one process); the step takes this rank's share
                    batch = make_batch(chosen, pad_id, link_rng, recipe.awp_mask_groups, recipe.awp_rows).to(encoder.device)
                optimizer.zero_grad(set_to_none=True)
                result = (multiway_step if data.multiway else train_step)(objective, batch, recipe.chunk_size)
                record = self._apply_step(encoder, optimizer, scheduler, state, result)
                elapsed, window = time.time() - window, time.time()
                record.update(pairs_per_s=round(len(chosen) * ranks.world / max(elapsed, 1e-9), 2))
                bar.set_postfix({k: f"{record[k]:.3f}" for k in ("loss", "tr", "awp", "wtr", "rtl") if k in record}
                                | {"pairs/s": f"{record['pairs_per_s']:.1f}"})
                bar.update(1)
                if state.step % recipe.eval_interval == 0 or state.step == recipe.steps:
                    ranks_torch = ranks.all_gather_object(torch_rng_state())  # every rank takes part
                    if ranks.is_main:
                        record["dev"] = self._evaluate(encoder, data, state)
                        save_checkpoint(self.out, encoder, optimizer, scheduler, sampler, link_rng, state, recipe,
                                        objective.decoder, ranks_torch)
                        encoder.train()
                log.write(json.dumps(record) + "\n")
                log.flush()
                if self.on_step:
                    self.on_step(state.step, record)
        bar.close()

    def _apply_step(self, encoder, optimizer, scheduler, state: TrainState, result) -> dict:
        record = {"step": state.step + 1, "loss": result.total, "tr": result.tr, "awp": result.awp, "wtr": result.wtr,
                  "lr": scheduler.get_last_lr()[0], "word_pairs": result.word_pairs}
        if self.recipe.losses.rtl:
            record["rtl"] = result.rtl
        if not math.isfinite(result.total):
            state.nonfinite_in_a_row += 1
            state.nonfinite_total += 1
            record["skipped"] = "non-finite loss"
            if state.nonfinite_in_a_row >= MAX_NONFINITE_IN_A_ROW:
                raise TrainingStopped(f"{MAX_NONFINITE_IN_A_ROW} non-finite losses in a row at step {state.step + 1}",
                                      hint="lower the learning rate (--set lr=...) or check the data")
        else:
            state.nonfinite_in_a_row = 0
            self.ranks.sum_gradients([p for group in optimizer.param_groups for p in group["params"]])
            params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            if self.recipe.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, self.recipe.grad_clip)
            optimizer.step()
        with warnings.catch_warnings():  # a skipped step still moves the schedule on
            warnings.simplefilter("ignore", UserWarning)
            scheduler.step()
        state.step += 1
        return record

    def _evaluate(self, encoder, data: TrainingData, state: TrainState) -> dict:
        results = evaluate_dev(encoder, data.dev)
        results["step"] = state.step
        state.dev_history.append(results)
        score = results["mean"] if data.dev else float(state.step)  # no dev set: the last step is the best
        if score > state.best_score:
            state.best_step, state.best_score = state.step, score
        return results

    def _export(self, encoder, state: TrainState, data: TrainingData, alignment: dict, wall: float, n_train: int):
        if state.best_step != state.step:
            encoder.load_state_dict(load_checkpoint(checkpoint_dir(self.out, state.best_step))["model"])
        best = next((d for d in state.dev_history if d["step"] == state.best_step), {})
        meta = {
            "wacse_version": __version__,
            "recipe": self.recipe.to_dict(),
            "training": {
                "steps": state.step, "best_step": state.best_step, "batch_size": self.recipe.batch_size,
                "train_pairs": n_train, "data": [Path(t.name).name for t in data.texts],
                "languages": data.languages, "losses": self.recipe.to_dict()["losses"], **alignment,
                "wall_time_s": round(wall, 1), "nonfinite_steps": state.nonfinite_total,
                **({"mlm_head_warmup": state.head_warmup} if state.head_warmup else {}),
            },
            "dev_results_before": state.dev_before,
            "dev_results": best,
        }
        export_model(encoder, self.out, meta)
        return TrainResult(self.out, state.step, state.dev_before, best, state.best_step, wall, state.nonfinite_total)


def alignments_used(recipe: Recipe) -> dict:
    if not (recipe.losses.awp or recipe.losses.wtr):
        return {"aligner": None}
    a = recipe.align
    info = {"aligner": a.aligner, "align_model": a.model or (recipe.model if a.aligner == "embed" else ""),
            "threshold": a.threshold}
    if a.aligner == "wspalign":
        info["license_notes"] = ["word alignments from WSPAlign weights (CC-BY-NC-SA 4.0)"]
    return info


def export_model(encoder: SentenceEncoder, out: Path, meta: dict) -> None:
    """Save into a temporary folder, then move each file into ``out``; wacse.json goes last, so a
    folder with wacse.json is complete."""
    tmp = out / EXPORT_TMP
    shutil.rmtree(tmp, ignore_errors=True)
    encoder.save(tmp, meta)
    try:
        from .card import write_model_card

        write_model_card(tmp)
    except ImportError:
        pass
    names = sorted(p.name for p in tmp.iterdir())
    for name in [n for n in names if n != "wacse.json"] + ["wacse.json"]:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(tmp / name, target)
    tmp.rmdir()
