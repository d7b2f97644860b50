"""Where wacse keeps its cache: ``$WACSE_HOME`` or the platform's user cache folder.

The Hugging Face cache is never moved or copied; models are read from wherever
``huggingface_hub`` keeps them.
"""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def home() -> Path:
    root = os.environ.get("WACSE_HOME") or platformdirs.user_cache_dir("wacse")
    return Path(root).expanduser()


def cache_dir(kind: str) -> Path:
    """A sub-folder of the cache (``embeddings``, ``alignments``, ``models``), created on demand."""
    folder = home() / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder
