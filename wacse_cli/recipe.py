"""Training recipes: TOML files in ``recipes/`` (shipped with the package) with ``--set`` overrides.

A recipe names everything a run needs; the resolved recipe is written next to the outputs, so a
run can be repeated from its folder alone.
"""
from __future__ import annotations

import dataclasses
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import InputError, UsageError, where

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class Losses:
    """Loss weights: total = tr*TR + awp*AWP + wtr*WTR + rtl*RTL.

    On multi-way data (a ``#langs`` file), TR is taken between every pair of languages and is the
    only loss: awp, wtr and rtl must be 0 there.
    """

    tr: float = 0.8
    awp: float = 0.1
    wtr: float = 0.1
    rtl: float = 0.0


@dataclass
class Align:
    """Where word pairs come from."""

    aligner: str = "embed"  # embed | wspalign | file
    model: str = ""  # aligner model; empty: the model being trained (embed) or WSPAlign's checkpoint
    threshold: float = 0.9
    layer: int = 8
    prior: str = "none"  # embed: "ibm1" mixes in IBM Model 1 link probabilities fitted on the training text
    files: str = ""  # with aligner = "file": a pattern like "data/en-{lang}.align"


@dataclass
class Recipe:
    name: str = "custom"
    description: str = ""
    languages: list[str] = field(default_factory=list)
    data: str = ""  # a path pattern with {lang}, e.g. "data/en-{lang}.tsv"
    dev_data: str = ""  # optional pattern for dev files; otherwise a dev split of the training data
    dev_size: int = 200  # dev pairs taken from each training file when no dev_data is given
    model: str = "xlm-roberta-base"
    pooling: str = "cls"
    prefix: str = ""
    max_length: int = 32  # training inputs are truncated to this (the paper: 32)
    eval_max_length: int = 128  # dev evaluation and the saved model read this far
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.1  # share of the steps spent warming the learning rate up
    steps: int = 2000
    batch_size: int = 1024
    chunk_size: int = 64  # GradCache chunk: memory grows with this, not with batch_size
    temperature: float = 0.05
    tr_symmetric: bool = False  # false: TR from X to Y only (the paper's Eq. 9-10); true: both directions, averaged
    awp_mask_groups: int = 2  # AWP masks each sentence's aligned words in at most this many copies (0: one word a copy)
    awp_rows: float = 1.0  # share of each batch's sentences that AWP masks, its loss scaled up to the whole batch
    awp_candidates: int = 0  # AWP scores masked words against this many vocabulary rows (the targets, random others); 0: all
    mlm_warmup_steps: int = 0  # a model without a trained MLM head: train one this long first (encoder frozen); 0: refuse it
    wtr_negatives: str = "sentence"  # sentence: x_j against the words of its own Y (the paper); batch: every Y's words in the chunk
    rtl_both_directions: bool = True  # RTL reconstructs Y from X and X from Y; false: only Y from X
    rtl_candidates: int = 0  # RTL scores its target tokens against this many vocabulary rows, as awp_candidates; 0: all
    freeze_embeddings: bool = False
    grad_clip: float = 1.0
    losses: Losses = field(default_factory=Losses)
    align: Align = field(default_factory=Align)
    lang_embedding: bool = False
    eval_interval: int = 2000
    seed: int = 42
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast where the GPU or CPU runs it fast; fp32; bf16

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _field_types(cls) -> dict[str, Any]:
    return {f.name: f for f in dataclasses.fields(cls)}


def valid_keys(cls=Recipe, prefix: str = "") -> list[str]:
    keys = []
    for name, f in _field_types(cls).items():
        if dataclasses.is_dataclass(f.default_factory if f.default_factory is not dataclasses.MISSING else None):
            keys += valid_keys(f.default_factory, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def _coerce(key: str, value: Any, default: Any, source: str = "") -> Any:
    """Check a value against the type of the field's default (``source``: where the value was set)."""
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is list and isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise UsageError(f"recipe field '{key}' must be {expected.__name__}, not {value!r}",
                         where=source or None, hint="fix the recipe or the --set option")
    return value


def _apply(target: Any, values: dict[str, Any], where_set: Callable[[str], str], prefix: str = "") -> None:
    """Set ``values`` on ``target``; ``where_set(dotted key)`` names where a value came from."""
    fields = _field_types(type(target))
    for key, value in values.items():
        full = prefix + key
        if key not in fields:
            raise UsageError(f"unknown recipe field '{full}' in {where_set(full)}", hint=f"valid fields: {', '.join(valid_keys())}")
        current = getattr(target, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise UsageError(f"recipe field '{full}' is a table; set its fields like {full}.{next(iter(_field_types(type(current))))}=...")
            _apply(current, value, where_set, full + ".")
        else:
            setattr(target, key, _coerce(full, value, current, where_set(full)))


def recipe_path(name: str) -> Path:
    """A recipe by name (``cpu-small``) or by path (``my.toml``)."""
    candidate = Path(name).expanduser()
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.exists():
            raise UsageError(f"{name}: no such recipe file", hint="check the path")
        return candidate
    for folder in (Path("recipes"), shipped_recipe_folder()):
        path = folder / f"{name}.toml"
        if path.exists():
            return path
    raise UsageError(f"unknown recipe '{name}'", hint=f"choose one of {', '.join(shipped_recipes())} or pass a .toml file")


def shipped_recipe_folder() -> Path:
    from . import recipes

    return Path(recipes.__path__[0])


def shipped_recipes() -> list[str]:
    return sorted(p.stem for p in shipped_recipe_folder().glob("*.toml"))


def recipe_descriptions() -> dict[str, str]:
    """Each shipped recipe's one-line description, by name."""
    out = {}
    for name in shipped_recipes():
        text = (shipped_recipe_folder() / f"{name}.toml").read_text(encoding="utf-8")
        out[name] = str(tomllib.loads(text).get("description", ""))
    return out


def load_recipe(name: str | None, overrides: list[str] | None = None) -> Recipe:
    recipe, sources = Recipe(), {}
    if name:
        path = recipe_path(name)
        text = _recipe_text(path)
        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"not valid TOML ({exc})", where=str(path), hint="fix the recipe file") from None
        values.setdefault("name", path.stem)
        lines = _key_lines(text)

        def in_file(key: str) -> str:
            return where(path, lines.get(key))

        _apply(recipe, values, in_file)
        sources.update((key, in_file(key)) for key, _ in _fields(values))
    for item in overrides or []:
        values = parse_override(item)
        _apply(recipe, values, lambda key: "--set")
        sources.update((key, "--set") for key, _ in _fields(values))
    recipe._sources = sources  # where each field was set, for validate_recipe's messages; not a field
    return recipe


def _key_lines(text: str) -> dict[str, int]:
    """The line of each ``key = value`` of a recipe file, by dotted key (``[losses]`` then ``tr``: losses.tr)."""
    lines, table = {}, ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            table = stripped.strip("[] ") + "."
        elif match := re.match(r"([A-Za-z_][\w.-]*)\s*=", stripped):
            lines[table + match.group(1)] = number
    return lines


def _recipe_text(path: Path) -> str:
    from .io import read_file_bytes

    data = read_file_bytes(str(path))  # one line for a folder, a missing or an unreadable file
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 (byte offset {exc.start})", where=str(path),
                         hint="save the recipe as UTF-8 text") from None


def parse_override(item: str) -> dict[str, Any]:
    """``losses.awp=0`` -> ``{"losses": {"awp": 0}}``; values are TOML, or else the text after ``=``
    kept verbatim (``prefix=query: `` keeps its trailing space, as does ``prefix="query: "``)."""
    if "=" not in item:
        raise UsageError(f"--set needs key=value, got '{item}'", hint="for example --set losses.awp=0")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"] if raw.strip() else raw
    except tomllib.TOMLDecodeError:
        value = raw
    nested: dict[str, Any] = {}
    cursor = nested
    parts = key.split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


def to_toml(recipe: Recipe) -> str:
    """The resolved recipe as TOML (flat fields first, then the tables)."""
    lines, tables = [], []
    for key, value in recipe.to_dict().items():
        if isinstance(value, dict):
            tables.append(f"\n[{key}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in value.items()))
        else:
            lines.append(f"{key} = {_toml_value(value)}\n")
    return "".join(lines) + "".join(tables)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def validate_recipe(recipe: Recipe) -> None:
    """Catch impossible settings before any data or model is loaded; every number must be finite."""
    for key, value in _fields(recipe.to_dict()):
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{key} must be a finite number, not {value}", where=_set_at(recipe, key),
                             hint="fix the recipe or the --set option")
    checks = [
        (recipe.steps >= 1, f"steps must be at least 1, not {recipe.steps}"),
        (recipe.batch_size >= 2, f"batch_size must be at least 2 (in-batch negatives), not {recipe.batch_size}"),
        (recipe.chunk_size >= 1, f"chunk_size must be at least 1, not {recipe.chunk_size}"),
        (recipe.lr > 0, f"lr must be positive, not {recipe.lr}"),
        (recipe.weight_decay >= 0, f"weight_decay must not be negative, not {recipe.weight_decay}"),
        (recipe.grad_clip >= 0, f"grad_clip must not be negative (0 turns clipping off), not {recipe.grad_clip}"),
        (recipe.dev_size >= 0, f"dev_size must not be negative, not {recipe.dev_size}"),
        (0 <= recipe.seed < 2**32, f"seed must be between 0 and 2**32 - 1, not {recipe.seed}"),
        (recipe.align.layer >= 0, f"align.layer must not be negative, not {recipe.align.layer}"),
        (recipe.temperature > 0, f"temperature must be positive, not {recipe.temperature}"),
        (recipe.eval_interval >= 1, f"eval_interval must be at least 1, not {recipe.eval_interval}"),
        (recipe.max_length >= 4, f"max_length must be at least 4, not {recipe.max_length}"),
        (recipe.eval_max_length >= 4, f"eval_max_length must be at least 4, not {recipe.eval_max_length}"),
        (recipe.precision in ("auto", "fp32", "bf16"), f"precision must be auto, fp32 or bf16, not '{recipe.precision}'"),
        (0 <= recipe.warmup < 1, f"warmup is a share of the steps in [0, 1), not {recipe.warmup}"),
        (recipe.pooling in ("cls", "mean"), f"pooling must be cls or mean, not '{recipe.pooling}'"),
        (recipe.align.prior in ("none", "ibm1"), f"align.prior must be none or ibm1, not '{recipe.align.prior}'"),
        (recipe.align.aligner in ("embed", "wspalign", "file"), f"align.aligner must be embed, wspalign or file, not '{recipe.align.aligner}'"),
        (0 <= recipe.align.threshold <= (2 if recipe.align.aligner == "wspalign" else 1),
         f"align.threshold must be in [0, 1] ([0, 2] for wspalign), not {recipe.align.threshold}"),
        (recipe.awp_mask_groups >= 0, f"awp_mask_groups must be 0 (one word a copy) or more, not {recipe.awp_mask_groups}"),
        (0 < recipe.awp_rows <= 1, f"awp_rows is a share of the batch in (0, 1], not {recipe.awp_rows}"),
        (recipe.awp_candidates >= 0, f"awp_candidates must be 0 (the whole vocabulary) or more, not {recipe.awp_candidates}"),
        (recipe.rtl_candidates >= 0, f"rtl_candidates must be 0 (the whole vocabulary) or more, not {recipe.rtl_candidates}"),
        (recipe.wtr_negatives in ("sentence", "batch"), f"wtr_negatives must be sentence or batch, not '{recipe.wtr_negatives}'"),
        (recipe.mlm_warmup_steps >= 0, f"mlm_warmup_steps must be 0 (refuse a model without a trained head) or more, "
                                       f"not {recipe.mlm_warmup_steps}"),
    ]
    weights = recipe.losses
    checks += [(getattr(weights, name) >= 0, f"losses.{name} must not be negative, not {getattr(weights, name)}")
               for name in ("tr", "awp", "wtr", "rtl")]
    checks.append((weights.tr + weights.awp + weights.wtr + weights.rtl > 0, "at least one loss weight must be positive"))
    for ok, message in checks:
        if not ok:
            raise UsageError(message, where=_set_at(recipe, message.split()[0]), hint="fix the recipe or the --set option")


def _set_at(recipe: Recipe, key: str) -> str:
    """``file:line`` or ``--set`` for a field load_recipe set; ``recipe`` for a default or a field set in code."""
    return getattr(recipe, "_sources", {}).get(key, "recipe")


def _fields(values: dict, prefix: str = ""):
    """(dotted key, value) of every field, tables included: ``losses.tr``."""
    for key, value in values.items():
        yield from _fields(value, f"{prefix}{key}.") if isinstance(value, dict) else [(prefix + key, value)]
