"""What ``--help`` shows beyond the options: one-line summaries for the command list, examples, and
argument placeholders without Python types."""
from __future__ import annotations

import re

from typer.core import TyperCommand

# typer appends the Python type to a positional argument's name (``FILE <str>``, ``FILE <list[str]>``);
# the metavar already says what to pass, so the type is blanked out (with spaces, to keep the columns).
_ARGUMENT_TYPE = re.compile(r"^(\s+\S+?(?:\.\.\.)?) (<[\w\[\]|, ]+>)(?=\s)", re.MULTILINE)


class HelpCommand(TyperCommand):
    """A typer command whose help names arguments by their metavar only."""

    def get_help(self, ctx) -> str:
        return _ARGUMENT_TYPE.sub(lambda m: m.group(1) + " " * (len(m.group(2)) + 1), super().get_help(ctx))


def examples(*lines: str) -> str:
    """An epilog of example command lines, kept as written (click rewraps other paragraphs)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


SUMMARIES = {
    "embed": "Embed sentences into unit vectors (.npy, row i = line i).",
    "search": "Find the nearest corpus sentences for each query.",
    "mine": "Mine parallel sentences from two monolingual files (margin scores).",
    "filter": "Keep the good pairs of a noisy bitext: named rules, then a calibrated encoder score.",
    "bootstrap": "Grow a small seed bitext by mining monolingual text and retraining, round by round.",
    "align": "Align the words of sentence pairs (Pharaoh i-j lines or JSONL).",
    "push": "Upload a trained model folder to the Hugging Face Hub, with a model card.",
    "train": "Fine-tune an encoder on parallel text (TR + AWP + WTR).",
    "demo": "Train a toy model (offline) or, with --real, multilingual-e5-small on the bundled sample and show what changed.",
    "eval": "Evaluate an encoder (retrieval, mining, sts) or word alignments (align).",
    "retrieval": "Bitext retrieval P@1 (Tatoeba protocol), both directions.",
    "mining": "BUCC-style mining: precision, recall and F1 of margin-mined pairs.",
    "sts": "Spearman correlation x 100 between cosine similarity and gold scores.",
    "eval-align": "Precision, recall, F1 and AER of word alignments against gold links.",
}

EXAMPLES = {
    "embed": examples(
        "wacse embed sentences.txt -o vectors.npy -m intfloat/multilingual-e5-small",
        "wacse embed kk-corpus.txt -o kk.npy -m runs/kk-ka --lang kk --dtype float16",
        "cat sentences.txt | wacse embed - -o - -m runs/kk-ka > vectors.npy"),
    "search": examples(
        "wacse search queries.txt --corpus kk-corpus.txt -k 5 -m runs/kk-ka",
        "wacse search queries.txt -c corpus.txt --score margin --json -m intfloat/multilingual-e5-small"),
    "mine": examples(
        "wacse mine en-news.txt kk-news.txt --threshold 1.06 -m runs/kk-ka -o mined.tsv",
        "wacse mine en.txt kk.txt --langs en,kk -m runs/kk-ka --index faiss-ivf"),
    "filter": examples(
        "wacse filter noisy.en-kk.tsv -m intfloat/multilingual-e5-small -o clean.en-kk.tsv",
        "wacse filter crawl.en-kk.tsv -m runs/kk -o clean.tsv --scores scores.tsv --precision 0.98"),
    "bootstrap": examples(
        "wacse bootstrap seed.en-kk.tsv --src mono.en --tgt mono.kk -m ../e5-small -o runs/kk",
        "wacse bootstrap seed.en-kk.tsv --src mono.en --tgt mono.kk -r cpu-small --rounds 3 -o runs/kk --resume"),
    "align": examples(
        "wacse align en-kk.tsv -o en-kk.align --aligner embed -m intfloat/multilingual-e5-small",
        "wacse align --src a.en --tgt a.kk -o a.align --aligner embed -m ../e5-small",
        "wacse align en-zh.tsv --format jsonl -o en-zh.jsonl   # WSPAlign (downloads its weights)"),
    "push": examples(
        "wacse push runs/kk-ka --repo user/e5-wacse-kk-ka --dry-run",
        "wacse push runs/kk-ka --repo user/e5-wacse-kk-ka --private"),
    "train": examples(
        "wacse train en-kk.tsv en-ka.tsv --recipe cpu-small -o runs/kk-ka",
        "wacse train en-kk.tsv --alignments en-kk.align -r cpu-small -m ../e5-small",
        "cut -f1,2 pairs.tsv | wacse train --langs en,kk - -r cpu-small",
        "wacse train --src a.en --tgt a.kk -r cpu-small --set losses.awp=0 --set steps=300",
        "wacse train --list-recipes"),
    "demo": examples(
        "wacse demo",
        "wacse demo --real                  # multilingual-e5-small from the cache or the Hub",
        "wacse demo --real -m ./e5-small    # the same from a local folder",
        "wacse demo --steps 100 -o runs/demo",
        "wacse demo --recipe multiway-demo"),
    "retrieval": examples(
        "wacse eval retrieval test/en-kk.tsv test/en-ka.tsv -m runs/kk-ka",
        "wacse eval retrieval pairs.tsv -m ../e5-small        # languages not needed",
        "wacse eval retrieval --src t.en --tgt t.kk -m runs/kk-ka --record"),
    "mining": examples("wacse eval mining bucc.en bucc.kk bucc.gold -m runs/kk-ka"),
    "sts": examples("wacse eval sts sts-test.tsv -m runs/kk-ka"),
    "eval-align": examples("wacse eval align en-kk.align --gold gold.tsv --gold-one-index"),
}


def recipe_list(only: tuple[str, ...] = ()) -> str:
    """The shipped recipes (those in ``only`` when given) with their one-line descriptions, as a help paragraph."""
    from ..recipe import recipe_descriptions

    rows = {n: d for n, d in recipe_descriptions().items() if not only or n in only}
    width = max(map(len, rows), default=0)
    return "\b\nRecipes (--recipe NAME):\n" + "\n".join(f"  {n:<{width}}  {d}" for n, d in rows.items())


def command_options(name: str) -> dict:
    """Keyword arguments for ``app.command``: the help class, summary and examples of ``name``."""
    epilog = EXAMPLES.get(name)
    if name == "train":
        epilog = f"{epilog}\n\n{recipe_list()}"
    elif name == "demo":
        epilog = f"{epilog}\n\n{recipe_list(('demo', 'multiway-demo'))}"
    return {"cls": HelpCommand, "short_help": SUMMARIES[name], "epilog": epilog}
