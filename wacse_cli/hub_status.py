"""Whether the Hugging Face Hub can be reached, asked once per process before the first download.

Without this, an unreachable Hub costs every file lookup a round of retries (minutes in all) before
the load fails. One quick request decides instead: if the Hub does not answer, the process goes
offline (``HF_HUB_OFFLINE``), models in the local cache load as usual (quietly) and any other fails
at once with one line saying why and how to get it.
"""
from __future__ import annotations

import os

TIMEOUT_S = 5.0
_state = {"checked": False, "unreachable": ""}


def is_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def offline_reason() -> str:
    """Why downloads are off ("" when they are not)."""
    if _state["unreachable"]:
        return f"the Hugging Face Hub ({_state['unreachable']}) cannot be reached"
    return "HF_HUB_OFFLINE is set" if is_offline() else ""


def _answers(endpoint: str) -> bool:
    """Any HTTP answer counts (an error status is the Hub's to report); no answer in time does not."""
    from huggingface_hub.utils import get_session

    try:
        get_session().head(endpoint, timeout=TIMEOUT_S)
    except Exception:  # connection refused, DNS failure, timeout, proxy error: all mean unreachable
        return False
    return True


def check_hub() -> None:
    """Ask the Hub once; when it does not answer, work offline from the cache for the rest of the run."""
    if _state["checked"] or is_offline():
        return
    _state["checked"] = True
    from huggingface_hub import constants

    endpoint = constants.ENDPOINT
    if _answers(endpoint):
        return
    _state["unreachable"] = endpoint
    os.environ["HF_HUB_OFFLINE"] = "1"  # read by libraries that are imported later
    constants.HF_HUB_OFFLINE = True  # read at call time by huggingface_hub and transformers
