"""``wacse demo``: the whole pipeline offline on a CPU in a few minutes.

A tiny XLM-R-shaped model is built (once; it is kept in the cache) from the bundled CLDR sample
(English paired with Kazakh, Georgian, Javanese and Tagalog), its own word alignments are taken
with the embedding aligner, and it is trained with TR + AWP + WTR. The demo prints dev P@1 before
and after, P@1 on held-out pairs that neither training nor the choice of the best step saw, and
the word pairs the trained model aligns that the sample's one-word entries confirm.

``--recipe multiway-demo`` trains the same tiny model on ``multiway.tsv`` (the sample joined on its
English side into rows in five languages) with TR between every pair of languages, and prints dev
P@1 for every pair, non-English pairs included.
"""
from __future__ import annotations

import time
from pathlib import Path

from .io import atomic_output
from .paths import cache_dir

DEMO_LANGS = ("kk", "ka", "jv", "tl")
DEMO_MODEL = "demo-tiny-v1"
DEMO_RECIPES = ("demo", "multiway-demo")
REAL_DEMO_RECIPE = "demo-real"  # wacse demo --real: multilingual-e5-small instead of the tiny model


def demo_files() -> list[str]:
    folder = Path(__file__).with_name("demo")
    return [str(folder / f"en-{lang}.tsv") for lang in DEMO_LANGS]


def is_multiway_demo(recipe_name: str) -> bool:
    """Whether ``recipe_name`` is the multi-way demo; an error for anything but the two demo recipes."""
    from .errors import UsageError

    if recipe_name not in (*DEMO_RECIPES, REAL_DEMO_RECIPE):
        raise UsageError(f"wacse demo has no recipe '{recipe_name}'", hint=f"choose {' or '.join(DEMO_RECIPES)}")
    return recipe_name == "multiway-demo"


def real_demo_model(model: str | None = None) -> str:
    """The model ``wacse demo --real`` trains: ``model``, or the recipe's."""
    from .recipe import load_recipe

    return model or load_recipe(REAL_DEMO_RECIPE).model


def _cached(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # a malformed id or a broken cache counts as "not cached"; loading says what is wrong
        return False


def real_encoder_cached() -> bool:
    """Whether the real demo's model is in the Hugging Face cache (so --real runs offline)."""
    return _cached(real_demo_model())


def check_real_model(name: str) -> None:
    """Fail in one line, before anything is promised, when ``name`` is neither a folder, nor cached,
    nor downloadable."""
    from .hub_status import is_offline
    from .model import before_hub_access, load_error

    if Path(name).expanduser().exists():
        return
    before_hub_access(name)
    if is_offline() and not _cached(name):
        raise load_error(name, OSError("not in the cache"))


def multiway_demo_file() -> str:
    return str(Path(__file__).with_name("demo") / "multiway.tsv")


def demo_model() -> str:
    """The tiny model's folder, built on first use from the demo corpus."""
    from .tiny import build_tiny_model

    folder = cache_dir("models") / DEMO_MODEL
    if not (folder / "config.json").exists():
        sentences = [side for path in demo_files() for line in Path(path).read_text(encoding="utf-8").splitlines()
                     for side in line.split("\t")]
        build_tiny_model(folder, sentences, vocab_size=3000, hidden_size=128, layers=4, heads=4, max_length=64)
    return str(folder)


HELD_OUT = 50  # pairs per language never trained on and not used to choose the best step


def run_demo(output: str | None = None, model: str | None = None, overrides: list[str] | None = None,
             progress: bool = True, recipe_name: str = "demo"):
    """Train on the bundled sample; returns (TrainResult, example word pairs, (held-out P@1 before,
    after)); the multi-way demo has neither word pairs nor a held-out part."""
    from .model import load_encoder
    from .recipe import load_recipe
    from .train import Trainer, evaluate_dev

    multiway = is_multiway_demo(recipe_name)
    if recipe_name != REAL_DEMO_RECIPE:
        model = model or demo_model()
    recipe = load_recipe(recipe_name, [*([f'model="{_escape(model)}"'] if model else []), *(overrides or [])])
    model = recipe.model
    out = output or str(cache_dir("demo") / time.strftime("run-%Y%m%d-%H%M%S"))
    if multiway:
        return Trainer(recipe, out, files=[multiway_demo_file()], progress=progress).run(), [], None
    files, held_out = held_out_split(cache_dir("demo") / f"data-{HELD_OUT}")
    result = Trainer(recipe, out, files=files, progress=progress).run()
    base = load_encoder(model, pooling=recipe.pooling, prefix=recipe.prefix, max_length=recipe.eval_max_length)
    scores = (evaluate_dev(base, held_out), evaluate_dev(load_encoder(out), held_out))
    return result, example_alignments(out, recipe.align.threshold), scores


def held_out_split(folder: Path):
    """(training files, held-out dev sets): each demo file without its last ``HELD_OUT`` pairs (and
    without any pair sharing a sentence with them), written to ``folder``; those pairs held out."""
    from .io import read_parallel
    from .training_data import DevSet

    folder.mkdir(parents=True, exist_ok=True)
    files, held = [], []
    for path in demo_files():
        text = read_parallel(path)
        pairs = [p for p in text.pairs if p]
        test = pairs[-HELD_OUT:]
        seen = {sentence for pair in test for sentence in pair}
        train = [p for p in pairs[:-HELD_OUT] if p[0] not in seen and p[1] not in seen]
        target = folder / Path(path).name
        with atomic_output(str(target)) as handle:
            handle.write("".join(f"{a}\t{b}\n" for a, b in train))
        files.append(str(target))
        held.append(DevSet(text.pair_name, text.src_lang, text.tgt_lang, test))
    return files, held


def example_alignments(model_folder: str, threshold: float, per_language: int = 40) -> list[str]:
    """Word pairs that the trained model aligns on multi-word lines of each demo file, kept only when
    the sample itself confirms them: the pair is one of its one-word entries (a CLDR name that is a
    single word in both languages). A toy model links many wrong words with confidence, so
    unconfirmed links are counted, not shown. The last line says how many links were checked."""
    from .align import alignments_for, word_spans
    from .io import ParallelText, read_parallel
    from .model import load_encoder

    encoder = load_encoder(model_folder)
    lines, checked, seen, line_count = [], 0, set(), 0
    for path in demo_files():
        full = read_parallel(path)
        dictionary = known_translations(full.pairs)
        chosen = [p for p in full.pairs if p and len(p[0].split()) > 1][-per_language:]
        line_count += len(chosen)
        text = ParallelText(full.name, full.src_lang, full.tgt_lang, chosen)
        links = alignments_for(text, aligner="embed", model=encoder, threshold=threshold, progress=False,
                               use_cache=False)
        for (src, tgt), found in zip(text.pairs, links):
            src_words = [src[a:b] for a, b in word_spans(src)]
            tgt_words = [tgt[a:b] for a, b in word_spans(tgt)]
            checked += len(found or [])
            shown = confirmed_links(src_words, tgt_words, found or [], dictionary - seen)
            seen |= {(_word(src_words[i]), _word(tgt_words[j])) for i, j, _ in found or []} & dictionary
            if shown:
                lines.append(f"{text.pair_name}\t{src} | {tgt}\t{shown}")
    confirmed = sum(line.count(" -> ") for line in lines)
    lines.append(f"{confirmed} of the {checked} word links the model found on {line_count} multi-word lines "
                 f"({per_language} per language) are one-word entries of the sample, so known to be right; only "
                 "those are shown, each word pair once")
    return lines


def _word(text: str) -> str:
    return text.strip(".,;:!?()[]\"'«»“”").lower()


def known_translations(pairs) -> set[tuple[str, str]]:
    """(English word, word) of every entry that is a single word on both sides."""
    return {(_word(a), _word(b)) for a, b in (p for p in pairs if p) if len(a.split()) == 1 and len(b.split()) == 1}


def confirmed_links(src_words: list[str], tgt_words: list[str], links, dictionary: set) -> str:
    """``src -> tgt (score)`` for the links whose word pair is in ``dictionary``."""
    return ", ".join(f"{src_words[i]} -> {tgt_words[j]} ({score:.2f})" for i, j, score in links
                     if (_word(src_words[i]), _word(tgt_words[j])) in dictionary)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
