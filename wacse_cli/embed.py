"""Sentences to L2-normalised vectors, in input order.

Sentences are tokenised once, sorted by token count so that each batch pads only to its own
longest sentence, encoded without gradients, and put back in input order.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
from tqdm.auto import tqdm

from .model import SentenceEncoder


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def encode(
    encoder: SentenceEncoder,
    sentences: list[str],
    *,
    batch_size: int = 64,
    max_length: int | None = None,
    lang: str | None = None,
    progress: bool = True,
    desc: str = "embedding",
) -> np.ndarray:
    """float32 array of shape (len(sentences), hidden), each row of unit length."""
    if not sentences:
        return np.zeros((0, encoder.hidden_size), dtype=np.float32)
    length = min(max_length or encoder.settings.max_length, encoder.model_max_length)
    tokenizer = encoder.tokenizer
    ids = tokenizer([encoder.settings.prefix + s for s in sentences], truncation=True, max_length=length)["input_ids"]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    lang_id = encoder.lang_id(lang)
    out = np.zeros((len(sentences), encoder.hidden_size), dtype=np.float32)
    was_training = encoder.training
    encoder.eval()
    bar = tqdm(total=len(sentences), desc=desc, unit="sent", disable=not progress, leave=False)
    with torch.inference_mode(), _autocast(encoder.device):
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            batch = tokenizer.pad({"input_ids": [ids[i] for i in chosen]}, return_tensors="pt").to(encoder.device)
            lang_ids = None
            if lang_id is not None:
                lang_ids = torch.full((len(chosen),), lang_id, dtype=torch.long, device=encoder.device)
            vectors, _ = encoder(batch["input_ids"], batch["attention_mask"], lang_ids)
            vectors = torch.nn.functional.normalize(vectors.float(), dim=-1)
            out[chosen] = vectors.cpu().numpy()
            bar.update(len(chosen))
    bar.close()
    encoder.train(was_training)
    return out


def encode_lines(encoder: SentenceEncoder, lines: list[str | None], **kwargs) -> np.ndarray:
    """Like :func:`encode`, with a zero row wherever a line was skipped (None)."""
    kept = [i for i, line in enumerate(lines) if line is not None]
    vectors = encode(encoder, [lines[i] for i in kept], **kwargs)
    out = np.zeros((len(lines), encoder.hidden_size), dtype=np.float32)
    out[kept] = vectors
    return out


def cached_encode(encoder: SentenceEncoder, model_name: str, lines: list[str | None], *, use_cache: bool = True,
                  **kwargs) -> np.ndarray:
    """:func:`encode_lines`, kept in the cache under a key of the model's fingerprint, its pooling,
    prefix and max length, the language and the text's content hash, so a second search over the
    same corpus does not embed it again."""
    from .io import text_sha256
    from .model import fingerprint
    from .paths import cache_dir

    if not use_cache:
        return encode_lines(encoder, lines, **kwargs)
    max_length = min(kwargs.get("max_length") or encoder.settings.max_length, encoder.model_max_length)
    key = f"{fingerprint(encoder, model_name)}-{max_length}-{kwargs.get('lang') or ''}-{text_sha256(lines)[:24]}"
    path = cache_dir("embeddings") / f"{key}.npy"
    if path.exists():
        try:
            cached = np.load(path)
            if cached.shape == (len(lines), encoder.hidden_size):
                return cached
        except (OSError, ValueError):
            pass  # a damaged cache entry is recomputed
    vectors = encode_lines(encoder, lines, **kwargs)
    from .io import atomic_output

    with atomic_output(str(path), "wb") as handle:
        np.save(handle, vectors)
    return vectors
