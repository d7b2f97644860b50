"""Progress bars on stderr (tqdm), off where the caller asks or where ``TQDM_DISABLE`` is set.

tqdm reads ``TQDM_*`` environment variables only for arguments the caller leaves out, and every
wacse bar passes ``disable``; this keeps the variable working for users and test runs.
"""
from __future__ import annotations

import os

from tqdm.auto import tqdm


def progress_bar(*args, disable: bool = False, **kwargs) -> tqdm:
    off = os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no")
    return tqdm(*args, disable=disable or off, **kwargs)
