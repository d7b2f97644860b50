"""The files that make a saved wacse model a sentence-transformers model folder too."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model import EncoderSettings


def plain_file_modes(folder: Path) -> None:
    """Give every file the mode a new file gets here (0644 under the usual umask): some writers
    (safetensors' temporary files) leave 0600, so one file would be unreadable to others."""
    umask = os.umask(0)
    os.umask(umask)
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o666 & ~umask)


def write_sentence_transformers_files(folder: Path, settings: EncoderSettings, dim: int) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    pooling = {
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": settings.pooling == "cls",
        "pooling_mode_mean_tokens": settings.pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    versions = {"sentence_transformers": _installed("sentence-transformers"), "wacse": _version()}
    st_config: dict[str, Any] = {"__version__": {k: v for k, v in versions.items() if v}}
    if settings.lang_embedding:
        st_config["wacse_note"] = ("trained with a language-ID embedding that sentence-transformers does not apply; "
                                   "wacse applies it with --lang (see wacse.json and lang_embedding.safetensors)")
    if settings.prefix:
        st_config.update(prompts={"query": settings.prefix, "document": settings.prefix}, default_prompt_name="query")
    files = {
        "modules.json": modules,
        "1_Pooling/config.json": pooling,
        "sentence_bert_config.json": {"max_seq_length": settings.max_length, "do_lower_case": False},
        "config_sentence_transformers.json": st_config,
    }
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "2_Normalize").mkdir(exist_ok=True)
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def _installed(package: str) -> str | None:
    """The installed version of ``package``, or None (then the file does not claim one)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _version() -> str:
    from . import __version__

    return __version__
