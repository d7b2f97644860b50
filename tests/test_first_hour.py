"""A new user's first hour: language options alike everywhere, defaults that chain (model families,
align output reused by train), help with examples, an honest output folder, no waiting on a dead Hub."""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from importlib.metadata import version

import pytest

from wacse_cli import hub_status
from wacse_cli.cli import app
from wacse_cli.families import family_of
from wacse_cli.model import load_encoder
from wacse_cli.recipe import recipe_descriptions
from wacse_cli.run_recipe import data_pattern

from .conftest import demo_pairs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

COMMANDS = [["embed"], ["search"], ["mine"], ["align"], ["push"], ["train"], ["demo"],
            ["eval", "retrieval"], ["eval", "mining"], ["eval", "sts"], ["eval", "align"]]


# ----------------------------------------------------------------------------- help


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_help_has_examples_and_no_python_types(cli, command):
    result = cli(*command, "--help")
    assert result.exit_code == 0
    assert re.search(r"\n  Examples:\n    (\w+ .* \| )?wacse ", result.stdout), result.stdout
    assert not re.search(r"<(str|int|float|bool|list\[\w+\]|Path)>", result.stdout), result.stdout


def test_command_list_summaries_are_whole_sentences(cli):
    listing = cli("--help").stdout.split("Commands:\n", 1)[1]
    summaries = re.split(r"\n  (?=\w)", "\n" + listing)[1:]
    assert len(summaries) == len(app.registered_commands) + 1  # and eval
    for entry in summaries:
        text = " ".join(entry.split()[1:])
        assert text.endswith(".") and not text.endswith("..."), entry


def test_train_help_shows_defaults_recipes_and_list(cli):
    text = cli("train", "--help").stdout
    assert "logs; default: runs/RECIPE." in " ".join(text.split())
    for name, description in recipe_descriptions().items():
        assert re.search(rf"\n  +{re.escape(name)} +{re.escape(description[:40])}", text), name
    listed = cli("train", "--list-recipes")
    assert listed.exit_code == 0
    assert listed.stdout.splitlines() == [f"{n}\t{d}" for n, d in recipe_descriptions().items()]


def test_model_option_is_marked_required_where_it_is(cli):
    assert "[required]" in cli("embed", "--help").stdout.split("--model MODEL", 1)[1].split("--", 1)[0]
    assert "[required]" not in cli("train", "--help").stdout.split("--model MODEL", 1)[1].split("--", 1)[0]


# ----------------------------------------------------------------------------- languages


def test_language_options_are_named_alike(cli, tiny_model, tmp_path):
    for command in (["mine"], ["search"], ["align"], ["train"], ["eval", "retrieval"]):
        assert "--langs" in cli(*command, "--help").stdout, command
    for old in ("--src-lang", "--tgt-lang", "--corpus-lang"):
        assert old not in cli("mine", "--help").stdout + cli("search", "--help").stdout
    src, tgt = tmp_path / "a.txt", tmp_path / "b.txt"
    src.write_text("one\ntwo\nthree\n")
    tgt.write_text("bir\nekі\nüsh\n")
    old = cli("mine", src, tgt, "-m", tiny_model, "--src-lang", "en", "--tgt-lang", "kk")  # hidden, still works
    new = cli("mine", src, tgt, "-m", tiny_model, "--langs", "en,kk")
    # the tiny model has no language embedding, so both spellings are refused alike (codes there change nothing)
    assert old.exit_code == new.exit_code == 2 and old.stderr == new.stderr
    assert old.stderr.strip().endswith("has no language embedding; leave out --langs (it is for models trained with "
                                       "lang_embedding = true)")
    both = cli("mine", src, tgt, "-m", tiny_model, "--langs", "en,kk", "--src-lang", "en")
    assert both.exit_code == 2 and both.stderr.strip() == (
        "wacse: error: pass --langs or --src-lang/--tgt-lang, not both; --langs takes both codes, like en,kk")


def test_eval_retrieval_needs_no_languages(cli, tiny_model, tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{a}\t{b}\n" for a, b in demo_pairs("kk")[:20]), encoding="utf-8")
    src, tgt = tmp_path / "src.txt", tmp_path / "tgt.txt"
    src.write_text("".join(f"{a}\n" for a, _ in demo_pairs("kk")[:20]), encoding="utf-8")
    tgt.write_text("".join(f"{b}\n" for _, b in demo_pairs("kk")[:20]), encoding="utf-8")
    result = cli("eval", "retrieval", pairs, "--src", src, "--tgt", tgt, "-m", tiny_model, "--pooling", "mean",
                 "--prefix", "")
    assert result.exit_code == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()[1:3]]
    assert [r[1] for r in rows] == ["und-und", "und-und"] and rows[0][3:] == rows[1][3:]  # same pairs, same scores
    half = cli("eval", "retrieval", "--src", src, "-m", tiny_model)
    assert half.exit_code == 2 and half.stderr.strip() == (
        "wacse: error: --src needs --tgt too; pass both line-parallel files: --src a.en --tgt a.jv")


def test_align_needs_languages_only_for_text_without_spaces(cli, tmp_path):
    spaced, unspaced = tmp_path / "spaced.tsv", tmp_path / "unspaced.tsv"
    spaced.write_text("a small house\tшағын үй\n", encoding="utf-8")
    unspaced.write_text("a small house\t一个小房子\n", encoding="utf-8")
    result = cli("align", spaced, "--aligner", "diagonal", "--no-cache")
    assert result.exit_code == 0 and result.stdout == "0-0 1-1 2-1\n"
    result = cli("align", unspaced, "--aligner", "diagonal", "--no-cache")
    assert result.exit_code == 2 and result.stderr.strip() == (
        f"wacse: error: {unspaced}: the target side is in a script without spaces, so its language decides how "
        "words are cut; pass --langs (like en,zh) or --words tokenizer")


# ----------------------------------------------------------------------------- model families


def test_family_table():
    e5 = family_of("intfloat/multilingual-e5-small")
    assert (e5.pooling, e5.prefix) == ("mean", "query: ")
    assert family_of("/work/e5-small") == e5 and family_of("runs/x", "intfloat/e5-base-v2") == e5
    assert family_of("sentence-transformers/LaBSE").pooling == "cls"
    assert family_of("FacebookAI/xlm-roberta-base").label.startswith("XLM-R")
    assert family_of("my-model").label == "wacse's default for an unknown model"
    assert family_of("some/e50-model").label == "wacse's default for an unknown model"


def test_e5_folder_without_settings_gets_e5_settings_and_a_note(cli, tiny_model, tmp_path):
    folder = tmp_path / "e5-tiny"
    shutil.copytree(tiny_model, folder)
    encoder = load_encoder(str(folder))
    assert (encoder.settings.pooling, encoder.settings.prefix) == ("mean", "query: ")
    sentences = tmp_path / "s.txt"
    sentences.write_text("hello\n")
    result = cli("embed", sentences, "-m", folder, "-o", tmp_path / "v.npy")
    assert result.exit_code == 0
    assert result.stderr.splitlines()[0] == (
        f"wacse: note: {folder} stores no pooling or prefix; using mean pooling and prefix 'query: ' "
        "(multilingual-e5 / e5 models); pass --pooling and --prefix to choose")
    quiet = cli("embed", sentences, "-m", folder, "-o", tmp_path / "w.npy", "--pooling", "cls", "--prefix", "")
    assert "note" not in quiet.stderr


def test_sentence_transformers_files_decide_and_nothing_is_guessed(tiny_model, tmp_path):
    folder = tmp_path / "e5-st"
    shutil.copytree(tiny_model, folder)
    (folder / "modules.json").write_text(json.dumps([{"idx": 1, "path": "1_Pooling", "type": "x.Pooling"}]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling/config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    (folder / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {"query": "q: "}}))
    encoder = load_encoder(str(folder))
    assert (encoder.settings.pooling, encoder.settings.prefix, encoder.guessed) == ("cls", "q: ", "")


# ----------------------------------------------------------------------------- an unreachable Hub


def test_unreachable_hub_fails_at_once_in_one_line(cli, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setattr(hub_status, "_state", {"checked": False, "unreachable": ""})
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    sentences = tmp_path / "s.txt"
    sentences.write_text("hello\n")
    started = time.time()
    result = cli("embed", sentences, "-m", "someone/not-cached-model", "-o", tmp_path / "v.npy")
    assert time.time() - started < 30
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "wacse: error: model 'someone/not-cached-model' is not in the Hugging Face cache and the Hugging Face Hub "
        "(http://127.0.0.1:9) cannot be reached; download it once with network access "
        "(hf download someone/not-cached-model), or pass a local folder to --model")
    assert not (tmp_path / "v.npy").exists()


# ----------------------------------------------------------------------------- train: stdin, align output, folder


def test_data_pattern_names_files_of_one_pattern_only():
    assert data_pattern(["data/en-kk.tsv", "data/en-ka.tsv"], ["kk", "ka"]) == "data/en-{lang}.tsv"
    assert data_pattern(["a/en-kk.tsv", "b/en-ka.tsv"], ["kk", "ka"]) is None
    assert data_pattern(["kkk.tsv"], ["kk"]) is None


def test_train_from_stdin_on_align_output(cli, tiny_model, tmp_path):
    """The README's chain: align a file, train on it from standard input with --langs, reusing the
    alignments; the output folder says what the run used."""
    lines = [f"{a}\t{b}\n" for a, b in demo_pairs("kk")[:40]]
    lines[5] = "no tab on this line\n"
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(lines), encoding="utf-8")
    aligned = cli("align", pairs, "--aligner", "diagonal", "-m", tiny_model, "-o", tmp_path / "pairs.align",
                  "--on-bad-line", "skip")
    assert aligned.exit_code == 0, aligned.stderr
    out = tmp_path / "run"
    result = cli("train", "-", "--langs", "en,kk", "-m", tiny_model, "-r", "demo", "-o", out, "--alignments",
                 tmp_path / "pairs.align", "--on-bad-line", "skip", "--set", "steps=2", "--set", "eval_interval=1",
                 "--set", "batch_size=8", input="".join(lines))
    assert result.exit_code == 0, result.stderr
    assert re.findall(r"step (\d)/2: dev P@1 \d\.\d{4}", result.stderr) == ["1", "2"]
    assert "1 bad input line(s) skipped (--on-bad-line skip)" in result.stderr
    recipe = tomllib.loads((out / "recipe.toml").read_text(encoding="utf-8"))
    assert recipe["languages"] == ["kk"] and recipe["data"] == "" and recipe["model"] == tiny_model
    assert recipe["dev_size"] == 39 // 5  # the demo recipe asks for 80; a fifth of the 39 kept lines is taken
    assert recipe["align"]["aligner"] == "file" and recipe["align"]["files"] == str(tmp_path / "pairs.align")
    assert "# data: standard input (en kk): 39 lines kept, 32 trained on" in (out / "recipe.toml").read_text()
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "| Max length | 32 tokens in training; 128 tokens when embedding |" in card
    assert "| Word alignments | word pairs given in a file |" in card
    st_config = json.loads((out / "config_sentence_transformers.json").read_text())
    assert st_config["__version__"]["sentence_transformers"] == version("sentence-transformers")
    umask = os.umask(0)
    os.umask(umask)
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir() if p.is_file()} == {
        p.name: 0o666 & ~umask for p in out.iterdir() if p.is_file()}


def test_alignments_for_several_files_need_a_pattern(cli, tiny_model, tmp_path, pairs_file):
    result = cli("train", pairs_file, pairs_file, "-m", tiny_model, "--alignments", tmp_path / "a.align")
    assert result.exit_code == 2 and result.stderr.strip() == (
        "wacse: error: one --alignments file for 2 training files; pass a pattern like en-{lang}.align, "
        "{lang} being each file's target language")


def test_demo_shows_only_word_pairs_the_sample_confirms():
    from wacse_cli.demo import confirmed_links, known_translations

    dictionary = known_translations([("detective", "детектив"), ("Mountain.", "тау"), ("person biking", "x y"), None])
    assert dictionary == {("detective", "детектив"), ("mountain", "тау")}
    links = [(0, 1, 0.99), (1, 0, 0.71), (2, 1, 1.0)]
    shown = confirmed_links(["person", "mountain", "biking"], ["велосипедшісі", "тау"], links, dictionary)
    assert shown == ""  # 0-1 person/тау, 1-0 mountain/велосипедшісі, 2-1 biking/тау: none confirmed
    shown = confirmed_links(["person", "Mountain", "biking"], ["тау", "велосипедшісі"], links[1:2], dictionary)
    assert shown == "Mountain -> тау (0.71)"


def test_demo_reports_held_out_pairs_and_confirmed_word_pairs(cli, tiny_model, tmp_path):
    from wacse_cli.demo import HELD_OUT

    result = cli("demo", "-m", tiny_model, "-o", tmp_path / "run", "--steps", "1", "--set", "eval_interval=1",
                 "--set", "batch_size=8", "--set", "dev_size=10")
    assert result.exit_code == 0, result.output
    held = result.stdout.split("held-out P@1 (pairs neither trained on nor used to choose the step):\n")[1]
    rows = [line.split("\t") for line in held.split("\n\n")[0].splitlines()[1:5]]
    assert [(r[0], r[1]) for r in rows] == [(f"en-{lang}", str(HELD_OUT)) for lang in ("kk", "ka", "jv", "tl")]
    assert re.search(r"\n\d+ of the \d+ word links the model found on 160 multi-word lines \(40 per language\) are "
                     r"one-word entries of the sample, so known to be right; only those are shown, each word pair once",
                     result.stderr)
    shown = [pair for line in result.stdout.split("confirmed by the sample's one-word entries:\n")[1].splitlines()
             for pair in line.split("\t")[-1].split(", ") if " -> " in pair]
    assert len(shown) == len({pair.split(" (")[0] for pair in shown})
    data = tomllib.loads((tmp_path / "run" / "recipe.toml").read_text(encoding="utf-8"))["data"]
    assert data.endswith(f"data-{HELD_OUT}/en-{{lang}}.tsv")
