"""``wacse bootstrap``: grow the training data of a language pair from a small seed and monolingual text.

Round 0 trains on the seed's training split. Each later round, with the model of the round before:

1. embed both monolingual files, with the seed's dev pairs hidden among them, and one side of
   each seed training pair (the orphans: sources of half the pairs, targets of the other half)
   planted without its partner,
2. mine one-to-one pairs by ratio margin (:func:`wacse_cli.search.mine`, as ``wacse mine``),
3. estimate the mining precision on the hidden dev pairs (a mined pair that holds a dev sentence
   is right only if it is that sentence's dev pair); the pairs holding an orphan are certainly
   wrong, and wrong the way mining a comparable corpus goes wrong (a sentence with no partner
   matched to its nearest neighbour); every pair holding a planted sentence is then dropped, so
   mined pairs never reach the dev split,
4. filter the rest with ``wacse filter``'s rules, then keep those above the lowest margin whose
   estimated precision reaches the target, the margins calibrated (:mod:`wacse_cli.calibrate`)
   against the orphans' pairs rather than the filter's shuffled and shifted negatives, which
   score far below these errors (with those, 70% of the kept pairs were right where 95% was
   estimated; benchmarks/RESULTS.md),
5. train again on the seed plus the kept pairs (from the base model, or from the last round's with
   ``init="previous"``) and evaluate P@1 on the seed's dev split.

It stops after ``rounds`` rounds, or as soon as dev P@1 falls below the best round so far (a tie
goes on: a small dev split is often answered perfectly by the seed-only model already).
Round N lives in ``OUT/round-N/`` (mined pairs with scores, the training file, the model); its
``round.json``, written last, marks it finished, so ``resume`` continues after the last finished one.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .embed import encode_lines
from .errors import UsageError
from .calibrate import Cut, choose_cut, fit
from .filter import BELOW_CUT, FilterSettings
from .filter_rules import apply_rules
from .io import ParallelText, Sentences, atomic_output
from .recipe import Recipe
from .search import mine
from .training_data import dev_split

SUMMARY = "wacse.json"
ROUND_FILE = "round.json"
INITS = ("base", "previous")


@dataclass
class BootstrapSettings:
    rounds: int = 2
    precision: float = 0.95  # the filter's target precision
    neighbours: int = 4
    init: str = "base"  # train each round from the base model, or continue from the last round's
    filter: FilterSettings = field(default_factory=FilterSettings)


@dataclass
class Round:
    round: int
    train_pairs: int
    mined: int = 0  # one-to-one pairs mined (without those holding a dev sentence)
    kept: int = 0  # of those, kept by the filter
    heldout_precision: float | None = None  # mined pairs with a hidden dev sentence that are its dev pair
    heldout_pairs: int = 0  # mined pairs that hold a hidden dev sentence
    filter_precision: float | None = None  # the calibrated cut's own estimate
    dev_p1: float = float("nan")
    model: str = ""
    negatives: int = 0  # mined pairs holding an orphan (a seed sentence planted without its partner)


@dataclass
class Seed:
    """The seed split once for the whole run: training pairs and dev pairs."""

    src_lang: str
    tgt_lang: str
    train: list[tuple[str, str]]
    dev: list[tuple[str, str]]

    @property
    def pair_name(self) -> str:
        return f"{self.src_lang}-{self.tgt_lang}"


def split_seed(text: ParallelText, recipe: Recipe) -> Seed:
    """The recipe's dev split of the seed; training lines sharing a sentence with dev are left out."""
    pairs = list(dict.fromkeys(text.pairs[i] for i in text.kept()))
    train_idx, dev_idx = dev_split(len(pairs), recipe.dev_size, recipe.seed)
    if len(dev_idx) < 2:
        raise UsageError(f"{text.name}: a seed of {len(pairs)} distinct pairs leaves no dev split",
                         hint="use a seed of at least 10 pairs")
    dev = [pairs[i] for i in dev_idx]
    dev_src, dev_tgt = {s for s, _ in dev}, {t for _, t in dev}
    train = [pairs[i] for i in train_idx if pairs[i][0] not in dev_src and pairs[i][1] not in dev_tgt]
    return Seed(text.src_lang, text.tgt_lang, train, dev)


def write_pairs(path: Path, pairs: list[tuple[str, str]]) -> None:
    with atomic_output(str(path)) as handle:
        for src, tgt in pairs:
            handle.write(f"{src}\t{tgt}\n")


def pool(mono: Sentences, planted: list[str]) -> list[str]:
    """The monolingual sentences, each once, with the planted (dev) sentences among them; a tab
    inside a sentence becomes a space, so that mined pairs can be written as ``src<TAB>tgt``."""
    lines = [line.replace("\t", " ") for line in mono.lines if line is not None]
    return list(dict.fromkeys(lines + planted))


def orphans(train: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Seed sentences to plant without their partners: the sources of the even training pairs and
    the targets of the odd ones. Whatever mining pairs them with is wrong, and such pairs are the
    errors of mining a comparable corpus (a sentence with no partner matched to its nearest
    neighbour), which the filter's shuffled and shifted negatives do not resemble."""
    return [s for s, _ in train[0::2]], [t for _, t in train[1::2]]


def touches(pair: tuple[str, str], sources: set[str], targets: set[str]) -> bool:
    return pair[0] in sources or pair[1] in targets


def calibrated_cut(scores: np.ndarray, negatives: np.ndarray, reasons: list[str | None], precision: float):
    """(probability per mined pair, the cut) for the mined pairs' margins, calibrated against the
    orphans' margins (:func:`wacse_cli.calibrate.fit`); pairs a rule dropped get probability 0 and
    take no part in the cut."""
    scored = np.array([r is None for r in reasons], dtype=bool)
    probs = np.zeros(len(scores))
    if not scored.any():
        return probs, Cut(float("inf"), 0, 1.0, 0.0)
    probs[scored] = fit(scores[scored], negatives).probability(scores[scored])
    return probs, choose_cut(scores[scored], probs[scored], precision)


def heldout_precision(pairs: list[tuple[str, str]], dev: list[tuple[str, str]]) -> tuple[float | None, int]:
    """(share right, count) of the mined pairs that hold a dev sentence on either side."""
    dev_set, dev_src, dev_tgt = set(dev), {s for s, _ in dev}, {t for _, t in dev}
    touching = [p for p in pairs if p[0] in dev_src or p[1] in dev_tgt]
    if not touching:
        return None, 0
    return sum(p in dev_set for p in touching) / len(touching), len(touching)


class Bootstrap:
    """One bootstrap run in ``out``; ``train`` is called as ``train(recipe, folder, files)`` and
    returns the dev P@1 of the model it wrote there (see :func:`wacse_cli.train.Trainer`)."""

    def __init__(self, recipe: Recipe, seed: Seed, src_mono: Sentences, tgt_mono: Sentences, out: str | Path,
                 settings: BootstrapSettings, *, train: Callable[[Recipe, Path, list[str]], float],
                 load: Callable[[str], object], resume: bool = False, progress: bool = True,
                 report: Callable[[Round], None] = lambda r: None):
        self.recipe, self.seed, self.out = recipe, seed, Path(out)
        self.src_mono, self.tgt_mono, self.settings = src_mono, tgt_mono, settings
        self.train, self.load, self.resume, self.progress, self.report = train, load, resume, progress, report

    # ------------------------------------------------------------------ folders

    def finished_rounds(self) -> list[Round]:
        done = []
        while (path := self.out / f"round-{len(done)}" / ROUND_FILE).is_file():
            done.append(Round(**json.loads(path.read_text(encoding="utf-8"))))
        return done

    def _prepare(self) -> list[Round]:
        if self.out.exists() and any(self.out.iterdir()) and not self.resume:
            raise UsageError(f"{self.out} already holds files", hint="pass --resume to continue that run, or choose another -o")
        if self.resume and not (self.out / SUMMARY).is_file():
            raise UsageError(f"{self.out} holds no bootstrap run to resume", hint="run without --resume")
        self.out.mkdir(parents=True, exist_ok=True)
        done = self.finished_rounds() if self.resume else []
        if not done:
            write_pairs(self.dev_file, self.seed.dev)
        return done

    @property
    def dev_file(self) -> Path:
        return self.out / f"dev.{self.seed.pair_name}.tsv"

    # ------------------------------------------------------------------ rounds

    def run(self) -> list[Round]:
        rounds = self._prepare()
        self._write_summary(rounds, "running")
        stop = self._stop_reason(rounds)
        while stop is None:
            rounds.append(self._round(len(rounds), rounds))
            self.report(rounds[-1])
            stop = self._stop_reason(rounds)
            self._write_summary(rounds, stop or "running")
        return rounds

    def _stop_reason(self, rounds: list[Round]) -> str | None:
        if len(rounds) > self.settings.rounds:
            return f"ran {self.settings.rounds} rounds"
        if len(rounds) >= 2 and rounds[-1].dev_p1 < max(r.dev_p1 for r in rounds[:-1]):
            return "dev P@1 fell"  # a tie goes on: a small dev split is often saturated (P@1 1.0 from round 0)
        return None

    def _round(self, number: int, before: list[Round]) -> Round:
        folder = self.out / f"round-{number}"
        shutil.rmtree(folder, ignore_errors=True)  # an unfinished round starts again
        folder.mkdir(parents=True)
        record = Round(number, len(self.seed.train))
        train_pairs = list(self.seed.train)
        if number > 0:
            kept = self._mine_and_filter(folder, before[-1].model, record)
            train_pairs = list(dict.fromkeys(train_pairs + kept))
            record.train_pairs = len(train_pairs)
        train_file = folder / f"train.{self.seed.pair_name}.tsv"
        write_pairs(train_file, train_pairs)
        base = self.recipe.model if self.settings.init == "base" or number == 0 else before[-1].model
        recipe = dataclasses.replace(self.recipe, model=base, dev_data=str(self.dev_file).replace("{", "{{").replace("}", "}}"))
        record.model = str(folder / "model")
        record.dev_p1 = self.train(recipe, folder / "model", [str(train_file)])
        with atomic_output(str(folder / ROUND_FILE)) as handle:
            json.dump(dataclasses.asdict(record), handle, indent=2)
        return record

    def _mine_and_filter(self, folder: Path, model: str, record: Round) -> list[tuple[str, str]]:
        encoder = self.load(model)
        dev_src, dev_tgt = [s for s, _ in self.seed.dev], [t for _, t in self.seed.dev]
        orphan_src, orphan_tgt = orphans(self.seed.train)
        src_pool = pool(self.src_mono, dev_src + orphan_src)
        tgt_pool = pool(self.tgt_mono, dev_tgt + orphan_tgt)
        src_vecs = encode_lines(encoder, src_pool, desc="source", progress=self.progress, chunk_lines=100_000)
        tgt_vecs = encode_lines(encoder, tgt_pool, desc="target", progress=self.progress, chunk_lines=100_000)
        mined = mine(src_vecs, tgt_vecs, k=self.settings.neighbours, device=encoder.device)
        mined.sort(key=lambda p: p.src)  # input order of the source file: neighbouring lines stay neighbours
        pairs = [(src_pool[p.src], tgt_pool[p.tgt]) for p in mined]
        record.heldout_precision, record.heldout_pairs = heldout_precision(pairs, self.seed.dev)
        dev_sets, orphan_sets = (set(dev_src), set(dev_tgt)), (set(orphan_src), set(orphan_tgt))
        seed_pairs = set(self.seed.train)  # an orphan mined with its own partner (both in the user's mono) is right
        negatives = np.array([m.score for m, pair in zip(mined, pairs) if touches(pair, *orphan_sets)
                              and not touches(pair, *dev_sets) and pair not in seed_pairs])
        outside = [i for i, pair in enumerate(pairs) if not touches(pair, *dev_sets) and not touches(pair, *orphan_sets)]
        reasons = apply_rules([pairs[i] for i in outside], self.seed.src_lang, self.seed.tgt_lang,
                              self.settings.filter.rules)
        scores = np.array([mined[i].score for i in outside], dtype=float)
        probs, cut = calibrated_cut(scores, negatives, reasons, self.settings.precision)
        record.mined, record.negatives = len(outside), len(negatives)
        record.filter_precision = round(cut.precision, 4)
        for j, reason in enumerate(reasons):
            if reason is None and scores[j] < cut.threshold:
                reasons[j] = BELOW_CUT
        kept = [pairs[i] for j, i in enumerate(outside) if reasons[j] is None]
        record.kept = len(kept)
        with atomic_output(str(folder / "mined.tsv")) as handle:
            handle.write("margin\tprobability\tdecision\treason\tsource\ttarget\n")
            for j, i in enumerate(outside):
                handle.write(f"{scores[j]:.6f}\t{probs[j]:.4f}\t{'keep' if reasons[j] is None else 'drop'}\t"
                             f"{reasons[j] or '-'}\t{pairs[i][0]}\t{pairs[i][1]}\n")
        return kept

    def _write_summary(self, rounds: list[Round], status: str) -> None:
        best = max(rounds, key=lambda r: r.dev_p1, default=None)
        summary = {"status": status, "pair": self.seed.pair_name, "seed_train": len(self.seed.train),
                   "dev": len(self.seed.dev), "settings": {"rounds": self.settings.rounds,
                                                           "precision": self.settings.precision,
                                                           "init": self.settings.init},
                   "recipe": self.recipe.to_dict(), "rounds": [dataclasses.asdict(r) for r in rounds],
                   "best_round": best.round if best else None, "best_model": best.model if best else None}
        with atomic_output(str(self.out / SUMMARY)) as handle:
            json.dump(summary, handle, indent=2, ensure_ascii=False)


def round_table(rounds: list[Round]) -> str:
    lines = ["round\ttrain_pairs\tmined\tkept\theldout_precision\tfilter_precision\tdev_p1"]
    for r in rounds:
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        lines.append(f"{r.round}\t{r.train_pairs}\t{r.mined}\t{r.kept}\t{fmt(r.heldout_precision)}\t"
                     f"{fmt(r.filter_precision)}\t{r.dev_p1:.4f}")
    return "\n".join(lines)


def train_round(recipe: Recipe, folder: Path, files: list[str], *, progress: bool = True) -> float:
    """Train one round with :class:`wacse_cli.train.Trainer`; its dev P@1 (mean of both directions)."""
    from .train import Trainer

    result = Trainer(recipe, folder, files=files, progress=progress).run()
    return float(result.dev_after.get("mean", float("nan")))


def load_round_model(path: str, device: str = "auto"):
    from .model import load_encoder

    return load_encoder(path, device=device)
