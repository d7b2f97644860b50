"""End to end on a real pretrained encoder (multilingual-e5-small) and real parallel text.

Marked slow (run with ``pytest -m slow``): it reads ../shared and uses the e5-small folder that
../shared/tools/make_e5_small.py builds (``$WACSE_E5_SMALL``, or ../e5-small beside the
project), building it when missing; it is skipped when neither can be had. The reference
numbers are computed independently, straight from transformers: AutoModel, the "query: "
prefix, a mean over real tokens, and numpy's argmax.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import SHARED

pytestmark = pytest.mark.slow
FILES = ["ui/en-kk.tsv", "ui/en-ka.tsv"]
E5 = ("--pooling", "mean", "--prefix", "query: ")


@pytest.fixture(scope="module")
def e5_small(tmp_path_factory) -> str:
    folder = os.environ.get("WACSE_E5_SMALL") or str(SHARED.parent / "e5-small")
    if Path(folder, "model.safetensors").exists():
        return folder
    builder = SHARED / "tools" / "make_e5_small.py"
    if not builder.exists():
        pytest.skip(f"{builder} is not there")
    folder = str(tmp_path_factory.mktemp("e5") / "e5-small")
    built = subprocess.run([sys.executable, str(builder), folder], capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"cannot build e5-small: {built.stderr.strip().splitlines()[-1:]}")
    return folder


def pairs_of(name: str) -> list[tuple[str, str]]:
    path = SHARED / "data" / name
    if not path.exists():
        pytest.skip(f"{path} is not there")
    return [tuple(row.split("\t")[:2]) for row in path.read_text(encoding="utf-8").splitlines()]


def independent_vectors(folder: str, sentences: list[str], batch: int = 64) -> np.ndarray:
    """Mean-pooled, L2-normalised e5 vectors, written without wacse."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(sentences), batch):
            enc = tokenizer(["query: " + s for s in sentences[start:start + batch]], padding=True, truncation=True,
                            max_length=128, return_tensors="pt")
            states = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            out.append(((states * mask).sum(1) / mask.sum(1)).numpy())
    vectors = np.concatenate(out)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def reference(e5_small) -> dict:
    """Per file: the cosine matrix from independent vectors (rows: English, columns: the other side)."""
    sims = {}
    for name in FILES:
        pairs = pairs_of(name)
        vectors = independent_vectors(e5_small, [a for a, _ in pairs] + [b for _, b in pairs])
        sims[name] = vectors[:len(pairs)] @ vectors[len(pairs):].T
    return sims


def test_eval_retrieval_reproduces_an_independent_p_at_1(cli, e5_small, reference):
    result = cli("eval", "retrieval", *[SHARED / "data" / f for f in FILES], "-m", e5_small, *E5, "--json")
    assert result.exit_code == 0, result.output
    for subset, name in zip(json.loads(result.stdout)["scores"]["test"], FILES):
        sims, gold = reference[name], np.arange(len(reference[name]))
        expected = ((sims.argmax(1) == gold).mean() + (sims.argmax(0) == gold).mean()) / 2
        assert abs(subset["main_score"] - expected) <= 0.002, (name, subset["main_score"], expected)


def test_search_top_1_agrees_with_the_independent_argmax(cli, e5_small, reference, tmp_path):
    name = FILES[0]
    pairs = pairs_of(name)
    queries, corpus = tmp_path / "q.txt", tmp_path / "c.txt"
    queries.write_text("".join(f"{a}\n" for a, _ in pairs), encoding="utf-8")
    corpus.write_text("".join(f"{b}\n" for _, b in pairs), encoding="utf-8")
    result = cli("search", queries, "--corpus", corpus, "-k", "1", "-m", e5_small, *E5)
    assert result.exit_code == 0, result.output
    top1 = np.array([int(row.split("\t")[3]) - 1 for row in result.stdout.splitlines()])
    sims = reference[name]
    best_two = np.sort(sims, axis=1)[:, -2:]
    clear = best_two[:, 1] - best_two[:, 0] > 1e-5  # where rounding cannot swap the winner
    assert len(top1) == len(pairs) and clear.mean() > 0.95
    assert (top1[clear] == sims.argmax(1)[clear]).all()
    assert (top1 == sims.argmax(1)).mean() > 0.995
