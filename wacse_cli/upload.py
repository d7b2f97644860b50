"""Sharing a trained model on the Hugging Face Hub: folder checks and the upload.

``wacse push`` uploads a ``wacse train`` folder in one ``upload_folder`` commit, so a failed push
leaves the repository as it was. What goes up is decided by ``IGNORE_PATTERNS`` alone, and
``upload_plan`` applies them exactly as ``huggingface_hub`` does, so ``--dry-run`` lists the very
files a real push sends. The token is left to ``huggingface_hub`` (``HF_TOKEN`` or ``hf auth
login``): wacse only asks whether one exists and never holds, prints or stores it. The model card
comes from ``card``.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import re
from pathlib import Path
from typing import Any

from .card import card_edited, read_meta, write_model_card
from .errors import UsageError, WacseError
from .hub_status import is_offline
from .model import LANG_EMBEDDING_FILE, WACSE_FILE


# Everything in a training folder that is not part of the model: resumable checkpoints, optimizer,
# scheduler and RNG states, the MLM head used only by the AWP loss, alignment caches, half-written
# files. Patterns use huggingface_hub's matching, where ``*`` also crosses ``/``.
IGNORE_PATTERNS = (
    "checkpoints/*",
    "checkpoint-*/*",
    "alignments/*",
    "*.pt",
    "*.pth",
    "*optimizer*",
    "*scheduler*",
    "*rng_state*",
    "mlm_head.safetensors",
    "*.partial",
    "*.partial/*",
    "*.tmp",
    "__pycache__/*",
    "*/__pycache__/*",
    "*.pyc",
)
NOTHING_COMMITTED = "nothing partial was committed (a push is a single commit: it lands whole or not at all)"
MAX_FILES = 100  # far below huggingface_hub's batch size, so the upload stays one commit


# ----------------------------------------------------------------------------- the folder


def _missing_weights(folder: Path) -> list[str]:
    """Sharded weights need their index and every shard it names."""
    if (folder / "model.safetensors").is_file():
        return []
    index = folder / "model.safetensors.index.json"
    if not index.is_file():
        return ["model.safetensors"]
    try:
        shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
    except (OSError, ValueError, KeyError, AttributeError):
        return [f"{index.name} (unreadable)"]
    return sorted(s for s in shards if not (folder / s).is_file())


def check_model_folder(folder: str | Path) -> None:
    """Refuse anything that is not a complete wacse model folder, naming every missing file.

    Checked before any upload so that a half-written or wrong folder never reaches the Hub.
    ``2_Normalize/`` is not required: it is empty, and git (hence the Hub) keeps no empty folders.
    """
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{folder}: is a file, not a model folder", hint="pass the output folder of wacse train")
    if not path.is_dir():
        raise UsageError(f"{folder}: no such folder", hint="pass the output folder of wacse train")
    required = ["config.json", "tokenizer.json", "tokenizer_config.json", "modules.json", "1_Pooling/config.json",
                "sentence_bert_config.json", "config_sentence_transformers.json", WACSE_FILE]
    missing = _missing_weights(path) + [name for name in required if not (path / name).is_file()]
    needs_embedding = WACSE_FILE not in missing and read_meta(path).get("lang_embedding")
    if needs_embedding and not (path / LANG_EMBEDDING_FILE).is_file():
        missing.append(LANG_EMBEDDING_FILE)
    if missing:
        raise UsageError(
            f"{folder} is not a complete wacse model folder: missing {', '.join(missing)}",
            hint="pass the output folder of a finished wacse train run",
        )


def upload_plan(folder: str | Path) -> list[tuple[str, int]]:
    """(path in the repository, bytes) of every file a push sends, in upload order.

    Lists and filters files the way ``HfApi.upload_folder`` does (its default patterns keep
    ``.git`` and ``.cache/huggingface`` out too), so a dry run shows what a real push commits.
    """
    from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

    root = Path(folder).expanduser().resolve()
    files = {p.relative_to(root).as_posix(): p for p in sorted(root.glob("**/*")) if p.is_file()}
    kept = filter_repo_objects(files, ignore_patterns=[*IGNORE_PATTERNS, *DEFAULT_IGNORE_PATTERNS])
    return [(name, files[name].stat().st_size) for name in kept]



# ----------------------------------------------------------------------------- pushing


def check_repo_id(repo_id: str) -> str:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise UsageError(f"--repo '{repo_id}' is not a valid Hub repository id",
                         hint="write it like user/xlmr-wacse-jv-kk") from None
    return repo_id


def _check_can_push() -> None:
    """Fail before touching the folder when no upload can work: offline, or not logged in."""
    import huggingface_hub

    if is_offline():
        raise WacseError("cannot push while offline (HF_HUB_OFFLINE is set)",
                         hint="unset HF_HUB_OFFLINE, or use --dry-run to see what would be uploaded")
    if huggingface_hub.get_token() is None:
        raise WacseError("not logged in to the Hugging Face Hub",
                         hint="run 'hf auth login' or set HF_TOKEN to a token with write access")


def _network_errors() -> tuple[type[BaseException], ...]:
    """Transport failures of whichever HTTP client this huggingface_hub uses."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, names in (("httpx2", ("TransportError",)), ("httpx", ("TransportError",)),
                          ("requests.exceptions", ("ConnectionError", "Timeout"))):
        with contextlib.suppress(ImportError):
            found += [getattr(importlib.import_module(module), n) for n in names]
    return tuple(found)


def _scrub(text: str) -> str:
    """Server text shown to the user, first line only, with anything shaped like a token hidden."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return re.sub(r"hf_[A-Za-z0-9]{6,}", "hf_***", first)[:200]


def _push_error(exc: BaseException, repo_id: str) -> WacseError:
    """One line per failure; the token never appears (no request headers, scrubbed server text)."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    namespace = repo_id.split("/")[0] if "/" in repo_id else "your own namespace"
    if isinstance(exc, OfflineModeIsEnabled):
        return WacseError("cannot push while offline (HF_HUB_OFFLINE is set)", hint="unset HF_HUB_OFFLINE")
    if isinstance(exc, HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return WacseError(f"no write permission to '{namespace}' on the Hugging Face Hub (HTTP {status})",
                              hint="log in with a token that may write there ('hf auth login'), or pick another --repo")
        if status is not None and (status >= 500 or status == 429):
            return WacseError(f"the Hugging Face Hub kept failing (HTTP {status}) after retries; {NOTHING_COMMITTED}",
                              hint="try again later")
        detail = _scrub(getattr(exc, "server_message", None) or "")
        return WacseError(f"the Hugging Face Hub refused the push (HTTP {status}{': ' + detail if detail else ''}); "
                          "nothing was committed", hint="check --repo and --revision")
    return WacseError(f"network failure talking to the Hugging Face Hub ({type(exc).__name__}) after retries; "
                      f"{NOTHING_COMMITTED}", hint="check the connection and run the same command again")


def _upload(api, folder: str, repo_id: str, *, private: bool, revision: str | None, message: str):
    """``create_repo`` (and the branch), then exactly one ``upload_folder`` commit."""
    api.create_repo(repo_id, private=True if private else None, exist_ok=True)
    if revision and revision != "main" and not revision.startswith("refs/pr/"):
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    return api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision, commit_message=message,
                             ignore_patterns=list(IGNORE_PATTERNS))


def push(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    dry_run: bool = False,
    api=None,
    new_card: bool = False,
) -> dict[str, Any]:
    """Check the folder, write its model card, and upload it in one commit (or only list it).

    ``private`` only matters when the repository is created (``None`` otherwise lets the Hub
    apply the owner's default). A README.md edited by hand is kept unless ``new_card``.
    Returns what was (or would be) sent: repo, files, bytes, the card's fate, the commit URL.
    """
    from huggingface_hub.errors import HfHubHTTPError

    from . import __version__

    check_repo_id(repo_id)
    check_model_folder(folder)
    if not dry_run:
        _check_can_push()
    keep = card_edited(folder) and not new_card
    if not keep:
        write_model_card(folder, repo_id)
    plan = upload_plan(folder)
    if len(plan) > MAX_FILES:
        raise UsageError(f"{folder} holds {len(plan)} files to upload (at most {MAX_FILES} fit one commit)",
                         hint="move files that are not part of the model out of the folder")
    summary = {"repo": repo_id, "revision": revision or "main", "files": [{"path": p, "bytes": b} for p, b in plan],
               "total_bytes": sum(b for _, b in plan), "card": "kept" if keep else "written", "dry_run": dry_run}
    if dry_run:
        return summary
    message = commit_message or f"Upload sentence encoder trained with wacse {__version__}"
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    try:
        info = _upload(api, str(folder), repo_id, private=private, revision=revision, message=message)
    except (HfHubHTTPError, *_network_errors()) as exc:
        raise _push_error(exc, repo_id) from None
    return {**summary, "commit_url": getattr(info, "commit_url", None)}
