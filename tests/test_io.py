import pytest

from wacse_cli.errors import InputError, UsageError
from wacse_cli.io import (
    atomic_output,
    is_multiway,
    langs_from_name,
    read_bitexts,
    read_multiway,
    read_parallel,
    read_scored_pairs,
    read_sentences,
)


def write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_tsv_pipes_and_two_files_give_the_same_pairs(tmp_path):
    tsv = write(tmp_path, "en-jv.tsv", b"a b\tc d\n\"quoted\"\t'x'\n")
    pipes = write(tmp_path, "en-jv.txt", b"a b ||| c d\n\"quoted\" ||| 'x'\n")
    src, tgt = write(tmp_path, "x.en", b"a b\n\"quoted\"\n"), write(tmp_path, "x.jv", b"c d\n'x'\n")
    expected = [("a b", "c d"), ('"quoted"', "'x'")]
    assert read_parallel(tsv).pairs == expected
    assert read_parallel(pipes).pairs == expected
    both = read_parallel(src=src, tgt=tgt)
    assert both.pairs == expected and both.langs == ("en", "jv")


def test_crlf_accepted_and_only_newline_splits(tmp_path):
    path = write(tmp_path, "en-kk.tsv", "one\u2028two\tбір\r\nthree\tүш\r\n".encode())
    text = read_parallel(path)
    assert text.pairs == [("one\u2028two", "бір"), ("three", "үш")]


def test_languages_from_name_or_option(tmp_path):
    assert langs_from_name("data/en-jv.tsv") == ("en", "jv")
    assert langs_from_name("train.eng-kaz.tsv") == ("eng", "kaz")
    assert langs_from_name("pairs.tsv") is None
    path = write(tmp_path, "pairs.tsv", b"a\tb\n")
    assert read_parallel(path, langs="en,kk").langs == ("en", "kk")
    with pytest.raises(UsageError, match="missing language codes"):
        read_parallel(path)
    with pytest.raises(UsageError, match="unknown language code 'xq'"):
        read_parallel(path, langs="en,xq")


@pytest.mark.parametrize(
    "content, line, message",
    [
        (b"a\tb\nc\td\te\n", 2, "expected 2 tab-separated columns, found 3"),
        (b"a\tb\n\tx\n", 2, "empty source side"),
        (b"a\tb\nx\t \n", 2, "empty target side"),
        (b"a\tb\nok\t\xff\xfe\n", 2, "invalid UTF-8 at byte offset 7 of the file (byte 4 of the line)"),
        (b"no separator here\n", 1, "found neither a tab nor ' ||| '"),
        (b"#langs en\nsun\n", 1, "the #langs header names 1 language(s)"),
        (b"#langs en kk en\na\tb\tc\n", 1, "language 'en' appears twice in the #langs header"),
        (b"#langs en kk\na\tb\tc\n", 2, "expected 2 tab-separated columns (one per header language), found 3"),
        (b"#langs en kk ka\na\tb\tc\nsun\t\t\n", 3, "fewer than 2 non-empty cells"),
        (b"#langs en kk\na\tb\n\n", 3, "empty line"),
    ],
)
def test_bad_lines_are_reported_with_file_and_line(tmp_path, content, line, message):
    path = write(tmp_path, "en-kk.tsv", content)
    with pytest.raises(InputError) as info:
        read_bitexts([path])  # read_parallel, or read_multiway for a file with a #langs header
    assert str(info.value).startswith(f"{path}:{line}: {message}")
    assert info.value.exit_code == 2


def test_skip_keeps_line_numbers_aligned(tmp_path):
    path = write(tmp_path, "en-kk.tsv", b"a\tb\nbad\tx\ty\nc\td\n")
    text = read_parallel(path, on_bad_line="skip")
    assert text.pairs == [("a", "b"), None, ("c", "d")]
    assert text.skipped == [(2, "expected 2 tab-separated columns, found 3")]


def test_two_files_of_different_length(tmp_path):
    src, tgt = write(tmp_path, "a.en", b"1\n2\n3\n"), write(tmp_path, "a.jv", b"1\n2\n")
    with pytest.raises(InputError) as info:
        read_parallel(src=src, tgt=tgt)
    assert str(info.value) == (
        f"{src}:3: no matching line in {tgt} ({src} has 3 lines, {tgt} has 2); the two files must be line-parallel"
    )


def test_sentences_empty_line(tmp_path):
    path = write(tmp_path, "s.txt", b"one\n\nthree\n")
    with pytest.raises(InputError, match=r"s.txt:2: empty line"):
        read_sentences(path)
    assert read_sentences(path, "skip").lines == ["one", None, "three"]


def test_scored_pairs_reject_a_non_number(tmp_path):
    path = write(tmp_path, "sts.tsv", b"a\tb\t1.5\nc\td\thigh\n")
    with pytest.raises(InputError, match=r"sts.tsv:2: score 'high' is not a number"):
        read_scored_pairs(path)


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_output(str(target)) as handle:
            handle.write("partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(str(target)) as handle:
        handle.write("done")
    assert target.read_text() == "done" and len(list(tmp_path.iterdir())) == 1


def test_multiway_rows_with_empty_cells(tmp_path):
    path = write(tmp_path, "three.tsv", "\ufeff#langs en kk ka\nsun\tкүн\tმზე\nmoon\t\tმთვარე\nstar\tжұлдыз\t \n".encode())
    assert is_multiway(path) and not is_multiway(write(tmp_path, "en-kk.tsv", b"#x\ty\n"))
    text = read_multiway(path)
    assert text.langs == ["en", "kk", "ka"]
    assert text.rows == [["sun", "күн", "მზე"], ["moon", None, "მთვარე"], ["star", "жұлдыз", None]]
    pairs = {t.pair_name: t.pairs for t in text.language_pairs()}
    assert pairs == {"en-kk": [("sun", "күн"), ("star", "жұлдыз")], "en-ka": [("sun", "მზე"), ("moon", "მთვარე")]}
    assert [t.pair_name for t in read_bitexts([path])] == ["en-kk", "en-ka"]  # kk-ka shares one row only
    with pytest.raises(UsageError, match="--langs does not apply"):
        read_bitexts([path], langs="en,kk")


def test_multiway_header_is_required_and_checked(tmp_path):
    with pytest.raises(InputError, match="headless.tsv:1: the first line must be a '#langs' header"):
        read_multiway(write(tmp_path, "headless.tsv", b"en\tkk\nsun\tx\n"))
    skipped = read_multiway(write(tmp_path, "multi.tsv", b"#langs en kk\na\tb\tc\nd\te\n"), "skip")
    assert skipped.rows == [None, ["d", "e"]] and skipped.skipped[0][0] == 2
    path = write(tmp_path, "multi.tsv", b"#langs en xq\na\tb\n")
    with pytest.raises(UsageError, match=f"unknown language code 'xq' in {path}:1"):
        read_multiway(path)
