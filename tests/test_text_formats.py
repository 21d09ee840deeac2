"""Text files in every mode, TinyStories' text format, and the end-of-text rule (docs/data.md).

The streaming reader is held to the whole-file rule it replaced (`whole_file_documents` below,
the previous implementation) on random files read in blocks of a few bytes, so every block
boundary (inside a CRLF, a multi-byte character, a separator) is crossed somewhere.
"""

from __future__ import annotations

import re
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from picollm import tokenizer as tokenizer_mod
from picollm.config import END_OF_TEXT
from picollm.data import text_source
from picollm.data.progress import progress
from picollm.data.text_source import load_text_documents
from picollm.data.tinystories import load_tinystories, text_batches, write_local_hub_layout
from picollm.errors import PicoError
from picollm.params import parse_params

import helpers as H

EOT = END_OF_TEXT


def tinystories_text(stories: list[str]) -> str:
    """TinyStories' published text format: each story followed by a line holding <|endoftext|>."""
    return "".join(f"{story}\n{EOT}\n" for story in stories)


STORIES = [
    "Once upon a time, there was a cat.\nThe cat liked milk.",
    'Tom saw a dog.\n\n"Hello!" said Tom.\n\nThe dog wagged its tail.',
    "Lily found a ball ✓ 猫.",
]


def assert_one_sentence(message: str) -> None:
    assert "\n" not in message
    assert not re.search(r"[.!?] [A-Z]", message), f"more than one sentence: {message}"


# ---------------------------------------------------------------------------- separator mode


def test_tinystories_format_gives_exactly_its_stories_with_internal_newlines(tmp_path):
    (tmp_path / "valid.txt").write_text(tinystories_text(STORIES), encoding="utf-8")
    documents = load_text_documents([str(tmp_path / "valid.txt")], mode="separator")
    assert documents == STORIES
    assert not any(EOT in document for document in documents)


def test_separator_mode_cuts_anywhere_and_skips_empty_documents(tmp_path):
    text = f"{EOT}\n\n  first story.  \r\nstill first\t\r\n\r\n{EOT}{EOT}\nsecond.{EOT} third\n  {EOT}  \n\n\n"
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert load_text_documents([str(tmp_path / "a.txt")], mode="separator") == ["first story.\nstill first", "second.", "third"]


def test_a_custom_separator_is_cut_on_and_never_kept(tmp_path):
    (tmp_path / "a.txt").write_text("one\n=====\ntwo\nlines\n=====\n", encoding="utf-8")
    assert load_text_documents([str(tmp_path / "a.txt")], mode="separator", separator="=====") == ["one", "two\nlines"]


@pytest.mark.parametrize("separator, error", [("", "separator ''"), ("a\nb", "separator 'a\\\\nb'"), ("  ", "separator '  '")])
def test_an_unusable_separator_is_refused_before_reading(tmp_path, separator, error):
    with pytest.raises(PicoError, match=f"data.mix.{error} is not usable; it must be visible text on one line"):
        load_text_documents([str(tmp_path / "missing.txt")], mode="separator", separator=separator, key="data.mix.paths")


@pytest.mark.parametrize("separator, fragment", [("", "data.text.separator = ''"), ("a\nb", "data.mix.separator = 'a\\nb'")])
def test_params_refuse_a_separator_that_is_empty_or_spans_lines(separator, fragment):
    params = H.smoke_params()
    section = "text" if "text" in fragment else "mix"
    params["data"][section] = {**params["data"].get(section, {}), "mode": "separator", "separator": separator}
    with pytest.raises(PicoError) as err:
        parse_params(params)
    assert fragment in str(err.value) and "visible text on one line" in str(err.value)
    assert_one_sentence(str(err.value))


def test_params_accept_separator_mode_with_the_end_of_text_default():
    params = H.smoke_params()
    params["data"]["text"]["mode"] = "separator"
    data = parse_params(params).data
    assert (data.text.mode, data.text.separator, data.mix.separator) == ("separator", EOT, EOT)


# ---------------------------------------------------------------------------- the end-of-text rule


@pytest.mark.parametrize("mode, line", [("line", 3), ("paragraph", 3)])
def test_tinystories_format_in_line_or_paragraph_mode_is_an_error_suggesting_separator_mode(tmp_path, mode, line):
    (tmp_path / "valid.txt").write_text(tinystories_text(STORIES[:1] + STORIES[2:]), encoding="utf-8")
    with pytest.raises(PicoError) as err:
        load_text_documents([str(tmp_path / "valid.txt")], mode=mode, key="data.mix.paths")
    message = str(err.value)
    assert f"valid.txt line {line} holds {EOT}, the end-of-text token's text, which is never part of a document" in message
    assert "looks like TinyStories' text format" in message and "set data.mix.mode: separator" in message
    assert_one_sentence(message)


def test_end_of_text_inside_a_line_names_the_line_and_both_remedies(tmp_path):
    (tmp_path / "a.txt").write_text("fine\n\nfirst line\nthe end.<|endoftext|> Next\n", encoding="utf-8")
    with pytest.raises(PicoError) as err:
        load_text_documents([str(tmp_path / "a.txt")], mode="paragraph")
    message = str(err.value)
    assert "a.txt line 4 holds <|endoftext|>" in message
    assert "remove it, or set data.text.mode: separator if it separates documents" in message
    assert "TinyStories" not in message


def test_end_of_text_under_another_separator_is_an_error(tmp_path):
    (tmp_path / "a.txt").write_text(f"one\n---\ntwo\nthree {EOT}\n---\n", encoding="utf-8")
    with pytest.raises(PicoError, match=r"a.txt line 4 holds <\|endoftext\|>.*remove it, or make it the separator \(data.text.separator\)"):
        load_text_documents([str(tmp_path / "a.txt")], mode="separator", separator="---")


def test_tinystories_rows_holding_the_separator_are_cut_there(tmp_path):
    rows = ["First story.", f"Second story.\n{EOT}\nThird story.", f"  {EOT} ", "Fourth."]
    local = write_local_hub_layout(tmp_path / "ts", {"train": rows})
    stories = load_tinystories(subset=None, path=str(local), cache_dir=str(tmp_path / "cache"))
    assert stories == ["First story.", "Second story.", "Third story.", "Fourth."]


def test_tinystories_batches_read_from_the_cache_files_equal_the_dataset(tmp_path):
    import datasets

    rows = [f"Story {i}." if i % 7 else None for i in range(2500)]
    local = write_local_hub_layout(tmp_path / "ts", {"train": rows})
    for spec in ("train[:1500]", "train[:1]", "train"):
        dataset = datasets.load_dataset(str(local), split=spec, cache_dir=str(tmp_path / "cache"))
        assert [row for batch in text_batches(dataset) for row in batch] == dataset["text"], spec
    picked = dataset.select([5, 3, 2400])  # an index mapping: read through Dataset.iter instead
    assert [row for batch in text_batches(picked) for row in batch] == ["Story 5.", "Story 3.", "Story 2400."]


def test_end_of_text_text_is_never_the_end_of_text_token(tmp_path):
    tok = tokenizer_mod.train_bpe(H.synthetic_texts(200), 300)
    for text in (EOT, f"a story {EOT} inside"):
        ids = tok.encode(text)
        assert tok.eot_id not in ids
        assert tok.decode(ids) == text
    # Only the id itself decodes to the separator; generation stops at it without yielding it.
    assert tok.decode([tok.eot_id]) == EOT


# ---------------------------------------------------------------------------- bounded reading


def whole_file_documents(raw: bytes, mode: str, separator: str = EOT) -> list[str]:
    """The rule the streaming reader implements, on the whole file at once (the former reader)."""
    text = raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if mode == "line":
        return [line.strip() for line in lines if line.strip()]
    if mode == "separator":
        pieces = text.split(separator)
        documents = ("\n".join(line.rstrip() for line in piece.split("\n")).strip() for piece in pieces)
        return [document for document in documents if document]
    paragraphs, current = [], []
    for line in lines + [""]:
        line = line.rstrip()
        if line.strip():
            current.append(line)
        elif current:
            paragraphs.append("\n".join(current).strip())
            current = []
    return paragraphs


pieces = st.sampled_from(["a", "b c", " ", "\t", "\n", "\r\n", "\r", "é", "猫", "✓", "--", "-", "\n--\n", "\u2028", "\x0b"])
fast = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@fast
@given(parts=st.lists(pieces, max_size=40), block=st.integers(1, 9), bom=st.booleans(), mode=st.sampled_from(["line", "paragraph", "separator"]))
def test_reading_in_tiny_blocks_matches_the_whole_file_rule(tmp_path, monkeypatch, parts, block, bom, mode):
    raw = (b"\xef\xbb\xbf" if bom else b"") + "".join(parts).encode("utf-8")
    path = tmp_path / "f.txt"
    path.write_bytes(raw)
    expected = whole_file_documents(raw, mode, separator="--")
    monkeypatch.setattr(text_source, "READ_BLOCK_BYTES", block)
    try:
        got = load_text_documents([str(path)], mode=mode, separator="--")
    except PicoError as err:
        assert not expected and "is empty or holds only whitespace" in str(err)
        return
    assert got == expected


def test_errors_keep_their_byte_offsets_and_lines_when_read_in_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(text_source, "READ_BLOCK_BYTES", 4)
    (tmp_path / "bad.txt").write_bytes(b"\xef\xbb\xbfok line\r\nbad \xff here\n")
    with pytest.raises(PicoError, match=r"byte 0xff at byte offset 16 \(line 2\)"):
        load_text_documents([str(tmp_path / "bad.txt")], mode="line")
    (tmp_path / "nul.txt").write_bytes(b"line one\nline two\x00\n")
    with pytest.raises(PicoError, match="contains a NUL byte at byte offset 17, so it looks binary"):
        load_text_documents([str(tmp_path / "nul.txt")], mode="line")


@pytest.mark.parametrize("mode", ["paragraph", "separator"])
def test_a_long_document_is_measured_without_being_held(tmp_path, mode):
    long = "\n".join(["x" * 30] * 20)  # lines 3-22: 619 bytes, against a limit of 100
    between = "\n\n" if mode == "paragraph" else f"\n{EOT}\n"
    (tmp_path / "long.txt").write_text(f"short{between}{long}{between}after\n", encoding="utf-8")
    with pytest.raises(PicoError, match="long.txt line 3 starts a document of 619 bytes, longer than the limit of 100 bytes"):
        load_text_documents([str(tmp_path / "long.txt")], mode=mode, max_document_bytes=100)


def test_a_line_without_breaks_is_refused_before_it_is_held_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(text_source, "READ_BLOCK_BYTES", 16)
    monkeypatch.setattr(text_source, "MAX_LINE_BYTES", 64)
    (tmp_path / "one.txt").write_text("ok\n" + "y" * 500, encoding="utf-8")
    with pytest.raises(PicoError, match=r"one.txt line 2 starts a document of at least (\d+) bytes \(no line break\)") as err:
        load_text_documents([str(tmp_path / "one.txt")], mode="line", max_document_bytes=10)
    held = int(re.search(r"at least (\d+) bytes", str(err.value)).group(1))
    assert 64 < held <= 64 + 16  # refused one block past the limit, not at the end of the line


# ---------------------------------------------------------------------------- progress bars


def test_progress_bars_are_silent_unless_stderr_is_a_terminal(monkeypatch, capsys):
    assert list(progress(range(3), "reading")) == [0, 1, 2]
    assert capsys.readouterr().err == ""

    class Terminal:
        written = ""

        def write(self, text):
            Terminal.written += text

        def flush(self):
            pass

        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert list(progress(range(3), "prepare: reading", total=3)) == [0, 1, 2]
    assert "prepare: reading" in Terminal.written and "100%" in Terminal.written
