"""Shared fixtures: a tiny XLM-R-shaped model built offline from the bundled demo corpus."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import wacse_cli
from wacse_cli.cli import app

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WACSE_BACKEND", "torch")  # tests of the ONNX backends ask for them
DEMO = Path(wacse_cli.__file__).parent / "demo"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def demo_pairs(lang: str = "kk") -> list[tuple[str, str]]:
    rows = (DEMO / f"en-{lang}.tsv").read_text(encoding="utf-8").splitlines()
    return [tuple(r.split("\t")) for r in rows]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    from wacse_cli.tiny import build_tiny_model

    sentences = [s for lang in ("kk", "ka", "jv", "tl") for pair in demo_pairs(lang) for s in pair]
    return str(build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", sentences, vocab_size=800))


@pytest.fixture(autouse=True)
def wacse_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "wacse-home"
    monkeypatch.setenv("WACSE_HOME", str(home))
    return home


@pytest.fixture
def cli():
    """Run ``wacse ARGS`` in-process; returns click's Result (exit_code, stdout, stderr)."""
    runner = CliRunner()

    def run(*args: str, input: str | bytes | None = None):
        return runner.invoke(app, [str(a) for a in args], input=input)

    return run


@pytest.fixture
def pairs_file(tmp_path) -> Path:
    path = tmp_path / "en-kk.tsv"
    path.write_text("".join(f"{a}\t{b}\n" for a, b in demo_pairs("kk")[:40]), encoding="utf-8")
    return path
