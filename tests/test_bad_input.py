"""Every malformed input: exit code 2, one line naming file:line, no traceback, no output left."""
import pytest

PAIR_CASES = {
    "three columns": (b"a\tb\nc\td\te\n", 2, "expected 2 tab-separated columns, found 3"),
    "empty side": (b"a\tb\n \tb\n", 2, "empty source side"),
    "invalid utf-8": (b"a\tb\nc\t\xc3\x28\n", 2, "invalid UTF-8 at byte offset 6"),
    "no separator": (b"just one sentence\n", 1, "found neither a tab nor ' ||| '"),
}
SENTENCE_CASES = {
    "empty line": (b"one\n\nthree\n", 2, "empty line"),
    "invalid utf-8": (b"one\n\xff\n", 2, "invalid UTF-8 at byte offset 4"),
}


def assert_one_line_error(result, where: str, message: str):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith(f"wacse: error: {where}: {message}"), lines[0]


@pytest.mark.parametrize("case", PAIR_CASES)
def test_eval_retrieval_bad_pairs(cli, tiny_model, tmp_path, case):
    content, line, message = PAIR_CASES[case]
    path = tmp_path / "en-kk.tsv"
    path.write_bytes(content)
    out = tmp_path / "results.json"
    result = cli("eval", "retrieval", path, "-m", tiny_model, "-o", out)
    assert_one_line_error(result, f"{path}:{line}", message)
    assert not out.exists()


@pytest.mark.parametrize("case", SENTENCE_CASES)
@pytest.mark.parametrize("command", ["embed", "search-query", "search-corpus", "mine"])
def test_sentence_commands_bad_lines(cli, tiny_model, tmp_path, case, command):
    content, line, message = SENTENCE_CASES[case]
    bad, good = tmp_path / "bad.txt", tmp_path / "good.txt"
    bad.write_bytes(content)
    good.write_text("hello\nworld\n")
    out = tmp_path / "out"
    args = {
        "embed": ["embed", bad, "-o", out],
        "search-query": ["search", bad, "--corpus", good, "-o", out],
        "search-corpus": ["search", good, "--corpus", bad, "-o", out],
        "mine": ["mine", good, bad, "-o", out],
    }[command]
    result = cli(*args, "-m", tiny_model)
    assert_one_line_error(result, f"{bad}:{line}", message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "good.txt"]


def test_two_files_of_different_length(cli, tiny_model, tmp_path):
    # eval retrieval takes files of pairs; the line-parallel reader is shared by align and train
    from wacse_cli.errors import InputError
    from wacse_cli.io import read_parallel

    src, tgt = tmp_path / "a.en", tmp_path / "a.kk"
    src.write_text("1\n2\n")
    tgt.write_text("1\n")
    with pytest.raises(InputError, match=r"a.en:2: no matching line in .*a.kk"):
        read_parallel(src=str(src), tgt=str(tgt))


def test_unknown_and_missing_language_codes(cli, tiny_model, tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("a\tb\n")
    result = cli("train", path, "-m", tiny_model, "-o", tmp_path / "run")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"wacse: error: missing language codes: cannot tell the languages of {path} from its name; "
        "name the file like en-jv.tsv or pass --langs en,jv"
    )
    assert not (tmp_path / "run").exists()
    result = cli("eval", "retrieval", path, "-m", tiny_model, "--langs", "en,zz")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "wacse: error: unknown language code 'zz' in --langs; use an ISO 639-1 or 639-3 code such as 'jv' or 'kaz'"
    )


def test_bad_sts_and_bucc_files(cli, tiny_model, tmp_path):
    sts = tmp_path / "sts.tsv"
    sts.write_text("a\tb\t1\nc\td\n")
    assert_one_line_error(cli("eval", "sts", sts, "-m", tiny_model), f"{sts}:2", "expected 3 tab-separated columns")
    src, tgt, gold = tmp_path / "s.tsv", tmp_path / "t.tsv", tmp_path / "g.tsv"
    src.write_text("s1\thello\ns1\tagain\n")
    tgt.write_text("t1\tworld\n")
    gold.write_text("s1\tt1\n")
    assert_one_line_error(cli("eval", "mining", src, tgt, gold, "-m", tiny_model), f"{src}:2", "id 's1' appears twice")


def test_missing_file_and_missing_model(cli, tiny_model, tmp_path):
    result = cli("embed", tmp_path / "nope.txt", "-m", tiny_model)
    assert result.exit_code == 2 and result.stderr.strip() == f"wacse: error: {tmp_path / 'nope.txt'}: no such file; check the path"
    good = tmp_path / "good.txt"
    good.write_text("hello\n")
    result = cli("embed", good, "-o", tmp_path / "e.npy")
    assert result.exit_code == 2
    assert result.stderr.strip() == "wacse: error: no model given; pass --model with a Hugging Face id or a local folder"


@pytest.mark.parametrize("command", ["align", "train"])
def test_a_missing_file_is_reported_before_its_languages(cli, tiny_model, tmp_path, command):
    """A path without language codes that does not exist: the missing file is the error, not its name."""
    missing = tmp_path / "pairs.tsv"
    extra = ["--aligner", "embed"] if command == "align" else ["--recipe", "demo", "-o", tmp_path / "run"]
    result = cli(command, missing, "-m", tiny_model, *extra)
    assert_one_line_error(result, str(missing), "no such file; check the path")
