"""The sentence encoder: a Hugging Face encoder, a pooling rule, an optional language-ID embedding
and, for training with aligned word prediction, a masked-language-model head.

A saved wacse model is a plain transformers folder (``AutoModel.from_pretrained`` loads it) that is
also a sentence-transformers folder (``modules.json``, ``1_Pooling``, ``2_Normalize``, written with
the legacy module type names that sentence-transformers 2 to 6 read), plus ``wacse.json`` with what
wacse needs beyond that (pooling, prefix, languages, the training recipe and its dev results).
"""
from __future__ import annotations

import contextlib
import hashlib
import io as _io
import json
import logging
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ModelError, UsageError
from .families import family_of, guessed_note
from .hub_status import check_hub, is_offline, offline_reason
from .mlm_head import MlmHead, check_trained_head
from .st_files import plain_file_modes, write_sentence_transformers_files

POOLINGS = ("cls", "mean")
WACSE_FILE = "wacse.json"
LANG_EMBEDDING_FILE = "lang_embedding.safetensors"
MLM_HEAD_FILE = "mlm_head.safetensors"


@dataclass
class EncoderSettings:
    """How sentences become vectors; stored in ``wacse.json``."""

    pooling: str = "cls"
    prefix: str = ""
    max_length: int = 128
    languages: list[str] = field(default_factory=list)  # order of the language-embedding rows
    lang_embedding: bool = False


def quiet_transformers() -> None:
    """Keep transformers' load reports and progress bars off the terminal unless debugging."""
    if os.environ.get("WACSE_DEBUG"):
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is available", hint="use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise UsageError(f"unknown device '{device}'", hint="use auto, cpu or cuda") from None


# ----------------------------------------------------------------------------- locating models


def before_hub_access(name_or_path: str) -> None:
    """A name that is not a local folder will be looked up on the Hub: check once that it answers."""
    if not Path(name_or_path).expanduser().exists():
        check_hub()


def _looks_like_path(name: str) -> bool:
    """Hub ids look like ``org/name``; anything else with a slash is meant as a folder."""
    return name.startswith((".", "/", "~")) or name.count("/") >= 2


def model_file(name_or_path: str, filename: str) -> Path | None:
    """A file of a local model folder or of a Hub model (cached, or downloaded when online)."""
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        path = local / filename
        return path if path.exists() else None
    from huggingface_hub import hf_hub_download

    check_hub()
    try:
        return Path(hf_hub_download(name_or_path, filename))
    except Exception:  # missing file, offline, private repo: the defaults apply
        return None


def _read_json(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read ({exc})", hint="repair or delete the file") from None


def saved_settings(name_or_path: str) -> tuple[EncoderSettings, dict[str, Any]]:
    """Defaults stored with a model: ``wacse.json`` first, then sentence-transformers files, then
    the documented settings of the model's family (see ``families``)."""
    return stored_settings(name_or_path)[:2]


def stored_settings(name_or_path: str) -> tuple[EncoderSettings, dict[str, Any], list[str]]:
    """:func:`saved_settings`, and which of pooling and prefix were guessed (none stored)."""
    meta = _read_json(model_file(name_or_path, WACSE_FILE))
    settings = EncoderSettings()
    if meta:
        known = {k: meta[k] for k in asdict(settings) if k in meta}
        return EncoderSettings(**known), meta, []
    settings, found = _sentence_transformers_settings(name_or_path)
    guessed = [name for name in ("pooling", "prefix") if name not in found]
    family = model_family(name_or_path)
    if "pooling" in guessed:
        settings.pooling = family.pooling
    if "prefix" in guessed:
        settings.prefix = family.prefix
    return settings, {}, guessed


def model_family(name_or_path: str):
    """The documented family of a model, by its id, folder name or the id its config was saved from."""
    config = _read_json(model_file(name_or_path, "config.json")) if Path(name_or_path).expanduser().is_dir() else {}
    return family_of(name_or_path, str(config.get("_name_or_path", "")))


def _sentence_transformers_settings(name_or_path: str) -> tuple[EncoderSettings, set[str]]:
    """Pooling, prompt and length from sentence-transformers files, and which of them were there."""
    settings, found = EncoderSettings(), set()
    modules = _read_json(model_file(name_or_path, "modules.json"))
    for module in modules if isinstance(modules, list) else []:
        if str(module.get("type", "")).endswith("Pooling"):
            pool_cfg = _read_json(model_file(name_or_path, f"{module.get('path', '1_Pooling')}/config.json"))
            mode = pool_cfg.get("pooling_mode")
            if pool_cfg.get("pooling_mode_cls_token") or mode == "cls":
                settings.pooling = "cls"
                found.add("pooling")
            elif pool_cfg.get("pooling_mode_mean_tokens") or mode == "mean":
                settings.pooling = "mean"
                found.add("pooling")
    st_cfg = _read_json(model_file(name_or_path, "config_sentence_transformers.json")) if modules else {}
    prompts, default_prompt = st_cfg.get("prompts") or {}, st_cfg.get("default_prompt_name")
    if default_prompt and default_prompt in prompts:
        settings.prefix = prompts[default_prompt]
    elif "query" in prompts:  # e5's own files: "query: " for symmetric tasks such as bitext mining
        settings.prefix = prompts["query"]
    if modules and ("prompts" in st_cfg or "pooling" in found):
        found.add("prefix")  # a sentence-transformers model without prompts takes the sentence as it is
    bert_cfg = _read_json(model_file(name_or_path, "sentence_bert_config.json")) if modules else {}
    if bert_cfg.get("max_seq_length"):
        settings.max_length = int(bert_cfg["max_seq_length"])
    return settings, found


def load_error(name: str, exc: Exception) -> ModelError:
    if _looks_like_path(name) and not Path(name).expanduser().exists():
        return ModelError(f"model folder '{name}' does not exist", hint="check the path given to --model")
    if is_offline() and not Path(name).expanduser().exists():
        return ModelError(
            f"model '{name}' is not in the Hugging Face cache and {offline_reason()}",
            hint=f"download it once with network access (hf download {name}), or pass a local folder to --model",
        )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ModelError(f"cannot load model '{name}': {first}", hint="check the model id or folder")


@contextlib.contextmanager
def quiet_stdout():
    """Some loaders print to stdout; results own stdout, so send that chatter to stderr."""
    buffer = _io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield
    if buffer.getvalue() and os.environ.get("WACSE_DEBUG"):
        import sys

        sys.stderr.write(buffer.getvalue())


def check_model_folder(folder: Path, name: str) -> None:
    """A local model must be a folder with a transformers config; say so rather than let a loader guess."""
    if not folder.is_dir():
        raise UsageError(f"{name}: is a file, not a model folder",
                         hint="pass a Hugging Face id or a model folder to --model")
    if not (folder / "config.json").is_file():
        raise UsageError(f"{name}: not a model folder (no config.json)",
                         hint="pass a folder written by wacse train or save_pretrained, or a Hugging Face id")


def load_backbone(name_or_path: str, *, with_mlm_head: bool = False, fresh_head: bool = False):
    """(tokenizer, encoder, mlm_head or None) from a Hub id or a local folder; a checkpoint without
    a trained MLM head is refused unless ``fresh_head`` (the head is then warmed up before use)."""
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

    quiet_transformers()
    local = Path(name_or_path).expanduser()
    if local.exists():
        check_model_folder(local, name_or_path)
    else:
        before_hub_access(name_or_path)
    source = str(local) if local.exists() else name_or_path
    try:
        with quiet_stdout():
            tokenizer = AutoTokenizer.from_pretrained(source)
            if not with_mlm_head:
                return tokenizer, AutoModel.from_pretrained(source), None
            mlm, info = AutoModelForMaskedLM.from_pretrained(source, output_loading_info=True)
    except (OSError, ValueError, KeyError) as exc:
        raise load_error(name_or_path, exc) from None
    head_name = next(n for n, _ in mlm.named_children() if n != mlm.base_model_prefix)
    trained = check_trained_head(name_or_path, head_name, info.get("missing_keys", []), warm_up=fresh_head)
    return tokenizer, mlm.base_model, MlmHead(getattr(mlm, head_name), head_name, trained=trained)


# ----------------------------------------------------------------------------- the encoder


class SentenceEncoder(nn.Module):
    """Encoder + pooling (+ language-ID embedding) (+ MLM head for training)."""

    def __init__(self, backbone, tokenizer, settings: EncoderSettings, *, name: str = "", mlm_head=None):
        super().__init__()
        if settings.pooling not in POOLINGS:
            raise UsageError(f"unknown pooling '{settings.pooling}'", hint="use cls or mean")
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.settings = settings
        self.name = name
        self.mlm_head = mlm_head
        self.guessed = ""  # a note for the user when pooling or prefix were guessed
        self.lang_embedding = None
        if settings.lang_embedding:
            if not settings.languages:
                raise UsageError("a language embedding needs the list of languages")
            self.lang_embedding = nn.Embedding(len(settings.languages), self.hidden_size)
            # random, as in the paper (section 6.1), at the scale the backbone initialises its embeddings
            std = getattr(backbone.config, "initializer_range", 0.02)
            nn.init.normal_(self.lang_embedding.weight, mean=0.0, std=std)
        if getattr(backbone, "pooler", None) is not None:
            backbone.pooler.requires_grad_(False)  # cls_before_pooler: the pooler MLP is never used

    @property
    def hidden_size(self) -> int:
        return self.backbone.config.hidden_size

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    @property
    def model_max_length(self) -> int:
        limit = getattr(self.backbone.config, "max_position_embeddings", 512)
        if getattr(self.backbone.config, "model_type", "") in ("xlm-roberta", "roberta", "camembert"):
            limit -= 2  # positions start after the padding index
        return limit

    def lang_id(self, lang: str | None) -> int | None:
        if lang is None or self.lang_embedding is None:
            return None
        if lang not in self.settings.languages:
            raise UsageError(
                f"the model has no language embedding for '{lang}'",
                hint=f"use one of {', '.join(self.settings.languages)}, or leave out --lang",
            )
        return self.settings.languages.index(lang)

    def tokenize(self, sentences: list[str], max_length: int | None = None, *, offsets: bool = False):
        """Token ids for ``prefix + sentence``, truncated to ``max_length``, padded to the longest."""
        length = min(max_length or self.settings.max_length, self.model_max_length)
        texts = [self.settings.prefix + s for s in sentences]
        return self.tokenizer(
            texts, padding=True, truncation=True, max_length=length,
            return_tensors="pt", return_offsets_mapping=offsets,
        )

    def token_states(self, input_ids, attention_mask, lang_ids: torch.Tensor | None = None):
        """Last hidden states, with the language-ID embedding added to the token embeddings."""
        if self.lang_embedding is None or lang_ids is None:
            return self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        embeds = self.backbone.get_input_embeddings()(input_ids) + self.lang_embedding(lang_ids)[:, None, :]
        return self.backbone(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state

    def pool(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``cls``: the state at position 0 before any pooler MLP; ``mean``: mean over real tokens."""
        if self.settings.pooling == "cls":
            return states[:, 0]
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def forward(self, input_ids, attention_mask, lang_ids=None):
        """(sentence vectors, token states)."""
        states = self.token_states(input_ids, attention_mask, lang_ids)
        return self.pool(states, attention_mask), states

    def mlm_logits(self, states: torch.Tensor) -> torch.Tensor:
        if self.mlm_head is None:
            raise ModelError("this encoder was loaded without an MLM head", hint="load it with with_mlm_head=True")
        return self.mlm_head(states)

    # ------------------------------------------------------------------------- saving

    def save(self, folder: str | Path, meta: dict[str, Any] | None = None) -> None:
        """Write a folder that transformers, sentence-transformers and wacse all load."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with quiet_stdout():
            self.backbone.save_pretrained(folder, safe_serialization=True)
            self.tokenizer.save_pretrained(folder)
        write_sentence_transformers_files(folder, self.settings, self.hidden_size)
        from safetensors.torch import save_file

        if self.lang_embedding is not None:
            save_file({"weight": self.lang_embedding.weight.detach().cpu().contiguous()}, folder / LANG_EMBEDDING_FILE)
        info = {**asdict(self.settings), "base_model": self.name, **(meta or {})}
        (folder / WACSE_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        plain_file_modes(folder)


def load_encoder(
    name_or_path: str,
    *,
    pooling: str | None = None,
    prefix: str | None = None,
    max_length: int | None = None,
    device: str = "cpu",
    with_mlm_head: bool = False,
    fresh_head: bool = False,
    lang_embedding_for: list[str] | None = None,
) -> SentenceEncoder:
    """Load an encoder; options left as None take the defaults stored with the model.

    ``lang_embedding_for`` adds a fresh (random) language embedding over those languages when the
    model has none, as training does.
    """
    if pooling is not None and pooling not in POOLINGS:
        raise UsageError(f"unknown pooling '{pooling}'", hint="use cls or mean")
    settings, meta, guessed = stored_settings(name_or_path)
    guessed = [name for name, given in (("pooling", pooling), ("prefix", prefix)) if name in guessed and given is None]
    if pooling is not None:
        settings.pooling = pooling
    if prefix is not None:
        settings.prefix = prefix
    if max_length is not None:
        if max_length < 4:
            raise UsageError(f"--max-length must be at least 4, not {max_length}")
        settings.max_length = max_length
    stored_embedding = settings.lang_embedding
    if lang_embedding_for and not stored_embedding:
        settings.lang_embedding, settings.languages = True, list(lang_embedding_for)
    tokenizer, backbone, head = load_backbone(name_or_path, with_mlm_head=with_mlm_head, fresh_head=fresh_head)
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"model '{name_or_path}' has no fast tokenizer", hint="use a model with tokenizer.json")
    encoder = SentenceEncoder(backbone, tokenizer, settings, name=meta.get("base_model") or name_or_path, mlm_head=head)
    if stored_embedding:
        _load_lang_embedding(encoder, name_or_path)
    encoder.guessed = guessed_note(name_or_path, model_family(name_or_path), guessed) if guessed else ""
    return encoder.to(resolve_device(device))


def _load_lang_embedding(encoder: SentenceEncoder, name_or_path: str) -> None:
    path = model_file(name_or_path, LANG_EMBEDDING_FILE)
    if path is None:
        raise ModelError(f"{name_or_path}: wacse.json names a language embedding but {LANG_EMBEDDING_FILE} is missing")
    from safetensors.torch import load_file

    with torch.no_grad():
        encoder.lang_embedding.weight.copy_(load_file(str(path))["weight"])


def fingerprint(encoder: SentenceEncoder, name_or_path: str) -> str:
    """Identifies a model's weights and settings, for cache keys."""
    digest = hashlib.sha256(json.dumps(asdict(encoder.settings), sort_keys=True).encode())
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        for item in sorted(local.iterdir()):
            if item.is_file():
                stat = item.stat()
                digest.update(f"{item.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        digest.update(str(local.resolve()).encode())
    else:
        digest.update(name_or_path.encode())
        digest.update(str(getattr(encoder.backbone.config, "_commit_hash", "")).encode())
    return digest.hexdigest()[:20]
