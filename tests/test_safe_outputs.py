"""No command overwrites one of its inputs or finds an unwritable output only after the work:
every refusal is one line, exit 2, before any model loads, with every file left as it was."""
import hashlib
import os
from pathlib import Path

import pytest

from .conftest import demo_pairs

MISSING_MODEL = "./no-such-model"  # loading it would fail: an error about the output proves the model never loaded
# /proc takes no new files: root is told so by the kernel, other users are refused earlier
PROC = "files cannot be created there" if os.geteuid() == 0 else "permission denied"


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pairs = demo_pairs("kk")[:12]
    Path("s.en-kk.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")
    Path("a.en").write_text("".join(f"{a}\n" for a, _ in pairs), encoding="utf-8")
    Path("b.kk").write_text("".join(f"{b}\n" for _, b in pairs), encoding="utf-8")
    return tmp_path


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def refused(result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1] == f"wacse: error: {message}"  # after any note on guessed settings


DESTROYS = "writing it would destroy the input; write the output to another file (-o)"
OUTPUT_IS_INPUT = {
    "eval retrieval": (["eval", "retrieval", "s.en-kk.tsv", "-o", "s.en-kk.tsv"], "s.en-kk.tsv"),
    "embed": (["embed", "a.en", "-o", "a.en"], "a.en"),
    "align": (["align", "s.en-kk.tsv", "-o", "s.en-kk.tsv", "--aligner", "diagonal"], "s.en-kk.tsv"),
    "align --tgt": (["align", "--src", "a.en", "--tgt", "b.kk", "-o", "b.kk", "--aligner", "diagonal"], "b.kk"),
    "search query": (["search", "a.en", "--corpus", "b.kk", "-o", "a.en"], "a.en"),
    "search corpus": (["search", "a.en", "--corpus", "b.kk", "-o", "b.kk"], "b.kk"),
    "mine": (["mine", "a.en", "b.kk", "-o", "a.en"], "a.en"),
    "embed --merge": (["embed", "a.en", "-o", "a.en", "--merge", "1"], "a.en"),
}


@pytest.mark.parametrize("case", OUTPUT_IS_INPUT)
def test_an_output_that_is_an_input_is_refused(cli, files, case):
    args, name = OUTPUT_IS_INPUT[case]
    before = snapshot(files)
    refused(cli(*args, "-m", MISSING_MODEL), f"the output {name} is also an input; {DESTROYS}")
    assert snapshot(files) == before


@pytest.mark.parametrize("spelling", ["./a.en", "link.en", "hard.en", "{abs}/a.en"])
def test_the_same_file_under_another_name_is_refused(cli, files, spelling):
    os.symlink("a.en", "link.en")
    os.link("a.en", "hard.en")
    output = spelling.format(abs=files)
    before = snapshot(files)
    refused(cli("embed", "a.en", "-o", output, "-m", MISSING_MODEL),
            f"the output {output} is the same file as the input a.en; {DESTROYS}")
    assert snapshot(files) == before


def test_train_refuses_an_input_as_its_output_folder(cli, files):
    before = snapshot(files)
    refused(cli("train", "s.en-kk.tsv", "-o", "s.en-kk.tsv", "-r", "demo", "-m", MISSING_MODEL),
            "the output folder s.en-kk.tsv is the input s.en-kk.tsv; choose a new folder for the output (-o)")
    refused(cli("train", "s.en-kk.tsv", "-o", "a.en", "-r", "demo", "-m", MISSING_MODEL),
            "a.en: is a file, not a folder; pass a folder for the output (-o)")
    refused(cli("train", "s.en-kk.tsv", "-o", ".", "-r", "demo", "-m", MISSING_MODEL),
            "the input s.en-kk.tsv lies inside the output folder .; keep inputs outside the output folder, "
            "or choose another -o")
    assert snapshot(files) == before


def test_an_existing_file_of_the_model_folder_is_not_an_output(cli, files, tiny_model):
    config = f"{tiny_model}/config.json"
    before = Path(config).read_bytes()
    refused(cli("embed", "a.en", "-o", config, "-m", tiny_model),
            f"the output {config} would overwrite a file of the input folder {tiny_model}; "
            "write the output outside that folder (-o)")
    assert Path(config).read_bytes() == before


UNWRITABLE = {
    "eval retrieval": ["eval", "retrieval", "s.en-kk.tsv"],
    "embed": ["embed", "a.en"],
    "search": ["search", "a.en", "--corpus", "b.kk"],
    "mine": ["mine", "a.en", "b.kk"],
    "align": ["align", "s.en-kk.tsv", "--aligner", "embed"],
}


@pytest.mark.parametrize("command", UNWRITABLE)
def test_an_unwritable_output_fails_before_the_model_loads(cli, files, command):
    before = snapshot(files)
    refused(cli(*UNWRITABLE[command], "-o", "/proc/x.json", "-m", MISSING_MODEL),
            f"/proc/x.json: cannot write in /proc ({PROC}); "
            "choose a writable place for the output (-o)")
    refused(cli(*UNWRITABLE[command], "-o", "missing/x.out", "-m", MISSING_MODEL),
            "missing/x.out: folder missing does not exist; create it first")
    refused(cli(*UNWRITABLE[command], "-o", "a.en/x.out", "-m", MISSING_MODEL),
            "a.en/x.out: a.en is a file, not a folder; choose another output path")
    assert snapshot(files) == before  # align no longer creates a missing folder


def test_unwritable_training_folders(cli, files):
    refused(cli("train", "s.en-kk.tsv", "-o", "/proc/run", "-r", "demo", "-m", MISSING_MODEL),
            f"/proc/run: cannot write in /proc ({PROC}); choose a writable place for the output (-o)")
    refused(cli("train", "s.en-kk.tsv", "-o", "a.en/run", "-r", "demo", "-m", MISSING_MODEL),
            "a.en/run: a.en is a file, not a folder; choose another output folder (-o)")
    refused(cli("demo", "-o", "a.en"), "a.en: is a file, not a folder; pass a folder for the output (-o)")


def test_standard_input_stands_for_one_input_only(cli, files):
    message = "standard input ('-') can stand for only one input; save the other inputs to files"
    refused(cli("search", "-", "--corpus", "-", "-m", MISSING_MODEL, input="a\nb\n"), message)
    refused(cli("mine", "-", "-", "-m", MISSING_MODEL, input="a\nb\n"), message)
    refused(cli("eval", "align", "-", "--gold", "-", input="0-0\n"), message)


def test_push_and_models_that_are_files_or_not_models(cli, files):
    refused(cli("push", "a.en", "--repo", "user/model", "--dry-run"),
            "a.en: is a file, not a model folder; pass the output folder of wacse train")
    Path("plain").mkdir()
    refused(cli("embed", "a.en", "-o", "e.npy", "-m", "plain"),
            "plain: not a model folder (no config.json); pass a folder written by wacse train or save_pretrained, "
            "or a Hugging Face id")
    refused(cli("embed", "a.en", "-o", "e.npy", "-m", "b.kk"),
            "b.kk: is a file, not a model folder; pass a Hugging Face id or a model folder to --model")
    refused(cli("align", "s.en-kk.tsv", "--aligner", "wspalign", "-m", "plain"),
            "plain: not a model folder (no config.json); pass a folder written by wacse train or save_pretrained, "
            "or a Hugging Face id")
    assert not Path("e.npy").exists()


def test_language_options_need_a_language_embedding(cli, files, tiny_model):
    refused(cli("embed", "a.en", "-o", "e.npy", "-m", tiny_model, "--lang", "zz"),
            "unknown language code 'zz' in --lang; use an ISO 639-1 or 639-3 code such as 'jv' or 'kaz'")
    refused(cli("embed", "a.en", "-o", "e.npy", "-m", tiny_model, "--lang", "kk"),
            f"--lang kk: the model {tiny_model} has no language embedding; "
            "leave out --lang (it is for models trained with lang_embedding = true)")
    refused(cli("search", "a.en", "--corpus", "b.kk", "-m", tiny_model, "--corpus-lang", "kk"),
            f"--langs kk: the model {tiny_model} has no language embedding; "
            "leave out --langs (it is for models trained with lang_embedding = true)")  # --corpus-lang is --langs' old spelling
    assert not Path("e.npy").exists()


def test_nul_bytes_are_bad_lines(cli, files, tiny_model):
    Path("nul.txt").write_bytes(b"hello\nhel\x00lo\n")
    refused(cli("embed", "nul.txt", "-o", "e.npy", "-m", tiny_model),
            "nul.txt:2: NUL byte at byte offset 9 of the file (byte 4 of the line): binary data, not text; "
            "remove or fill the line, or pass --on-bad-line skip")
    Path("nul.en-kk.tsv").write_bytes(b"a\tb\n\x00\tb\n")
    refused(cli("align", "nul.en-kk.tsv", "--aligner", "diagonal"),
            "nul.en-kk.tsv:2: NUL byte at byte offset 4 of the file (byte 1 of the line): binary data, not text; "
            "fix the line, or pass --on-bad-line skip")


def test_unexpected_failures_name_no_exception_class(cli, files, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyError("surprise")

    monkeypatch.setattr("wacse_cli.io.read_sentences", boom)
    result = cli("search", "a.en", "--corpus", "b.kk", "-m", MISSING_MODEL)
    assert result.exit_code == 1
    assert result.stderr.strip() == ("wacse: error: unexpected failure ('surprise'); set WACSE_DEBUG=1 for the "
                                     "traceback and report it")


def test_an_interrupt_wrapped_by_a_library_is_still_an_interrupt(cli, files, monkeypatch):
    def interrupted_import(*args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:  # what transformers does when Ctrl-C lands in a lazy import
            raise RuntimeError("Could not import module 'XLMRobertaModel'") from exc

    monkeypatch.setattr("wacse_cli.io.read_sentences", interrupted_import)
    result = cli("search", "a.en", "--corpus", "b.kk", "-m", MISSING_MODEL)
    assert result.exit_code == 130
    assert result.stderr.strip() == "wacse: error: interrupted; no output was written"
