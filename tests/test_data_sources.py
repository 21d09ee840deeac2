"""Data sources: custom text files, TinyStories via `datasets`, and corpus splitting/mixing.

Everything runs on real files in tmp_path; TinyStories goes through the real `datasets`
loading code on a small dataset written in the hub repository's parquet layout.
"""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from picollm.data.split import Document, assign_split, deduplicate, mix_documents, split_documents
from picollm.data.text_source import load_text_documents
from picollm.data.tinystories import load_tinystories, write_local_hub_layout
from picollm.errors import PicoError


def assert_one_sentence(message: str) -> None:
    assert "\n" not in message
    assert not re.search(r"[.!?] [A-Z]", message), f"more than one sentence: {message}"


def raises_pico(match: str | None = None):
    return pytest.raises(PicoError, match=match)


# ---------------------------------------------------------------------------- text files


def test_line_mode_makes_one_document_per_non_blank_line(tmp_path):
    (tmp_path / "a.txt").write_text("  first line  \n\n\tsecond\n   \nthird\n", encoding="utf-8")
    assert load_text_documents([str(tmp_path / "a.txt")], mode="line") == ["first line", "second", "third"]


def test_paragraph_mode_joins_lines_with_newline_and_splits_on_blank_lines(tmp_path):
    text = "\n\nOnce upon a time  \nthere was a cat.\n\n\n  \nThe end.\n"
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    assert load_text_documents([str(tmp_path / "a.txt")], mode="paragraph") == [
        "Once upon a time\nthere was a cat.",
        "The end.",
    ]


def test_crlf_lone_cr_and_utf8_bom_are_normalised(tmp_path):
    (tmp_path / "win.txt").write_bytes(b"\xef\xbb\xbfone\r\ntwo\r\n\r\nthree\rfour\r\n")
    path = str(tmp_path / "win.txt")
    assert load_text_documents([path], mode="line") == ["one", "two", "three", "four"]
    assert load_text_documents([path], mode="paragraph") == ["one\ntwo", "three\nfour"]


def test_folders_are_searched_recursively_sorted_and_deduplicated(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "b" / "deep").mkdir(parents=True)
    (corpus / "b" / "deep" / "z.txt").write_text("deep z\n", encoding="utf-8")
    (corpus / "b" / "a.txt").write_text("b a\n", encoding="utf-8")
    (corpus / "a.txt").write_text("top a\n", encoding="utf-8")
    (corpus / "notes.md").write_text("ignored: not .txt\n", encoding="utf-8")
    # The file named first keeps its first position; reaching it again via the folder adds nothing.
    paths = [str(corpus / "b" / "a.txt"), str(corpus), str(corpus / "a.txt")]
    assert load_text_documents(paths, mode="line") == ["b a", "top a", "deep z"]


def test_unicode_text_is_kept(tmp_path):
    (tmp_path / "u.txt").write_text("Ünïcödé ✓ 猫\n", encoding="utf-8")
    assert load_text_documents([str(tmp_path / "u.txt")], mode="line") == ["Ünïcödé ✓ 猫"]


def test_missing_path_is_named_with_what_was_expected(tmp_path):
    missing = tmp_path / "nope.txt"
    with raises_pico() as err:
        load_text_documents([str(missing)], mode="line", key="data.text.paths")
    message = str(err.value)
    assert str(missing) in message and "data.text.paths" in message and "does not exist" in message
    assert ".txt file or a folder" in message
    assert_one_sentence(message)


def test_folder_without_txt_files(tmp_path):
    (tmp_path / "only.md").write_text("x", encoding="utf-8")
    with raises_pico("contains no .txt files") as err:
        load_text_documents([str(tmp_path)], mode="line")
    assert str(tmp_path) in str(err.value)
    assert_one_sentence(str(err.value))


@pytest.mark.parametrize("content", [b"", b"   \n\r\n\t \n"])
def test_empty_or_whitespace_only_file(tmp_path, content):
    (tmp_path / "empty.txt").write_bytes(content)
    with raises_pico("empty or holds only whitespace") as err:
        load_text_documents([str(tmp_path / "empty.txt")], mode="paragraph")
    assert "empty.txt" in str(err.value)
    assert_one_sentence(str(err.value))


def test_non_utf8_names_file_and_byte_offset_of_first_bad_byte(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("héllo\nwörld\n".encode("latin-1"))  # é is 0xe9 at offset 1
    with raises_pico() as err:
        load_text_documents([str(tmp_path / "latin1.txt")], mode="line")
    message = str(err.value)
    assert "latin1.txt" in message and "byte offset 1 " in message and "0xe9" in message and "UTF-8" in message
    assert_one_sentence(message)


def test_non_utf8_offset_counts_from_file_start_even_after_a_bom(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"\xef\xbb\xbfok line\nbad \xff here\n")
    with raises_pico("byte offset 15 \\(line 2\\)"):
        load_text_documents([str(tmp_path / "bad.txt")], mode="line")


def test_binary_file_with_nul_bytes(tmp_path):
    (tmp_path / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with raises_pico("looks binary") as err:
        load_text_documents([str(tmp_path / "image.txt")], mode="line")
    assert "image.txt" in str(err.value) and "UTF-8" in str(err.value)
    assert_one_sentence(str(err.value))


@pytest.mark.parametrize("encoding, expected", [("utf-16", "byte-order mark"), ("utf-16-be", "looks like UTF-16"), ("utf-16-le", "looks like UTF-16")])
def test_utf16_is_rejected_with_a_clear_reason(tmp_path, encoding, expected):
    (tmp_path / "wide.txt").write_bytes("A story about a dog.\nAnother line.\n".encode(encoding))
    with raises_pico(expected) as err:
        load_text_documents([str(tmp_path / "wide.txt")], mode="line")
    assert "wide.txt" in str(err.value) and "UTF-8" in str(err.value)
    assert_one_sentence(str(err.value))


@pytest.mark.parametrize("mode", ["line", "paragraph"])
def test_document_longer_than_limit_names_file_line_and_limit(tmp_path, mode):
    (tmp_path / "long.txt").write_text("short\n\n" + "x" * 50 + "\n" + "y" * 60 + "\n", encoding="utf-8")
    target = 3  # the first over-long document (a line, or a paragraph) starts on line 3 in both modes
    with raises_pico() as err:
        load_text_documents([str(tmp_path / "long.txt")], mode=mode, max_document_bytes=40)
    message = str(err.value)
    assert "long.txt" in message and f"line {target} " in message and "limit of 40 bytes" in message
    assert_one_sentence(message)


def test_unknown_mode_lists_the_allowed_ones(tmp_path):
    (tmp_path / "a.txt").write_text("x\n", encoding="utf-8")
    with raises_pico("data.mix.mode 'sentence'.*'line', 'paragraph'") as err:
        load_text_documents([str(tmp_path / "a.txt")], mode="sentence", key="data.mix.paths")
    assert_one_sentence(str(err.value))


# ---------------------------------------------------------------------------- TinyStories


@pytest.fixture
def local_tinystories(tmp_path):
    train = ["  Once upon a time, Tom found a ball.  ", "", "Lily liked red apples.\n"] + [f"Story number {i}." for i in range(3, 40)]
    return write_local_hub_layout(tmp_path / "TinyStories", {"train": train, "validation": ["Val one.", "   ", "Val two."]})


def test_tinystories_subset_from_local_copy_through_datasets(local_tinystories, tmp_path):
    files = sorted(p.relative_to(local_tinystories).as_posix() for p in local_tinystories.rglob("*") if p.is_file())
    assert files == ["data/train-00000-of-00001.parquet", "data/validation-00000-of-00001.parquet"]  # the hub repo's layout
    cache = tmp_path / "hf-cache"
    stories = load_tinystories(subset=5, path=str(local_tinystories), cache_dir=str(cache))
    # The first 5 rows, stripped, with the empty one dropped.
    assert stories == ["Once upon a time, Tom found a ball.", "Lily liked red apples.", "Story number 3.", "Story number 4."]
    everything = load_tinystories(subset=None, path=str(local_tinystories), cache_dir=str(cache))
    assert len(everything) == 39 and everything[-1] == "Story number 39."
    assert load_tinystories(subset=1000, path=str(local_tinystories), cache_dir=str(cache)) == everything
    assert any(cache.iterdir()), "datasets should cache under cache_dir, not the home cache"
    validation = load_tinystories(subset=None, path=str(local_tinystories), split="validation", cache_dir=str(cache))
    assert validation == ["Val one.", "Val two."]


def test_tinystories_unknown_split_is_a_pico_error(local_tinystories, tmp_path):
    with raises_pico("split 'dev'") as err:
        load_tinystories(subset=3, path=str(local_tinystories), split="dev", cache_dir=str(tmp_path / "c"))
    assert_one_sentence(str(err.value))


def test_tinystories_bad_path_and_subset(tmp_path):
    with raises_pico("data.tinystories.path") as err:
        load_tinystories(subset=3, path=str(tmp_path / "missing"))
    assert_one_sentence(str(err.value))
    for bad_subset in (0, -1, 2.5, True):
        with raises_pico("data.tinystories.subset"):
            load_tinystories(subset=bad_subset, path=str(tmp_path))


def test_tinystories_folder_without_data_files(tmp_path):
    (tmp_path / "empty").mkdir()
    with raises_pico("data/train-\\*.parquet") as err:
        load_tinystories(subset=3, path=str(tmp_path / "empty"), cache_dir=str(tmp_path / "c"))
    assert str(tmp_path / "empty") in str(err.value)
    assert_one_sentence(str(err.value))


def test_tinystories_without_text_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "ds" / "data").mkdir(parents=True)
    pq.write_table(pa.table({"story": ["a", "b"]}), tmp_path / "ds" / "data" / "train-00000-of-00001.parquet")
    with raises_pico("no 'text' column"):
        load_tinystories(subset=None, path=str(tmp_path / "ds"), cache_dir=str(tmp_path / "c"))


def test_tinystories_offline_fails_fast_with_one_sentence_pointing_to_stories(tmp_path, monkeypatch):
    """Offline by construction, on any machine: the hub probe's session refuses every request."""
    import datasets.config
    import huggingface_hub.utils
    from huggingface_hub import constants

    probed = []

    class UnreachableHub:
        def head(self, url, timeout):
            probed.append(url)
            raise ConnectionError(f"{url} is unreachable in this test")

    monkeypatch.setattr(huggingface_hub.utils, "get_session", UnreachableHub)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # so that the probe runs, whatever the environment says
    flags_before = (datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE)
    started = time.monotonic()
    with raises_pico() as err:
        load_tinystories(subset=5, cache_dir=str(tmp_path / "hf-cache"))
    elapsed = time.monotonic() - started
    message = str(err.value)
    assert "TinyStories" in message and "no network?" in message
    assert "data.source: stories" in message and "data.source: text" in message and "data.tinystories.path" in message
    assert_one_sentence(message)
    assert elapsed < 10, f"offline failure took {elapsed:.1f}s"
    assert probed == [constants.ENDPOINT]  # the probe asked once, and its answer made the load go offline
    # Offline mode was only borrowed for that one call.
    assert (datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE) == flags_before


# ---------------------------------------------------------------------------- dedup


def doc(text: str, source: str = "text", logprob: float | None = None) -> Document:
    return Document(text=text, source=source, logprob=logprob)


def test_deduplicate_keeps_first_occurrence_in_order():
    docs = [doc("a", "stories", -1.0), doc("b"), doc("a", "text"), doc("c"), doc("b", "tinystories")]
    assert deduplicate(docs) == [doc("a", "stories", -1.0), doc("b"), doc("c")]
    assert deduplicate([]) == []


# ---------------------------------------------------------------------------- split

unique_texts = st.lists(st.text(min_size=1, max_size=12), unique=True, max_size=60)
fractions = st.sampled_from([0.0, 0.1, 0.2, 0.3, 0.45])
fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def split_or_error(docs, val, test, seed):
    try:
        return split_documents(docs, val_fraction=val, test_fraction=test, seed=seed)
    except PicoError as err:
        return err


@fast
@given(texts=unique_texts, val=fractions, test=fractions, seed=st.integers(-(2**63), 2**63))
def test_split_partitions_documents_in_order_or_explains_which_split_is_empty(texts, val, test, seed):
    docs = [doc(t) for t in texts]
    result = split_or_error(docs, val, test, seed)
    if isinstance(result, PicoError):
        message = str(result)
        assert_one_sentence(message)
        if not docs:
            assert "no documents" in message
            return
        # The error must be true: some split with a positive fraction really got nothing.
        empty = re.match(r"the (\w+) split would be empty", message).group(1)
        requested = {"train": 1, "val": val, "test": test}[empty]
        assert requested > 0
        assert all(assign_split(t, val_fraction=val, test_fraction=test, seed=seed) != empty for t in texts)
        return
    assert set(result) == {"train", "val", "test"}
    placed = [d for name in ("train", "val", "test") for d in result[name]]
    assert sorted(d.text for d in placed) == sorted(texts)  # covers everything, nothing twice
    for name, part in result.items():
        positions = [texts.index(d.text) for d in part]
        assert positions == sorted(positions), f"{name} lost input order"
    assert split_or_error(docs, val, test, seed) == result  # deterministic


@fast
@given(
    base=st.lists(st.text(min_size=1, max_size=12), unique=True, min_size=10, max_size=60),
    extra=unique_texts,
    val=st.sampled_from([0.0, 0.2, 0.3]),
    test=st.sampled_from([0.0, 0.2, 0.3]),
    seed=st.integers(0, 2**32),
)
def test_adding_unrelated_documents_never_moves_existing_ones(base, extra, val, test, seed):
    before = split_or_error([doc(t) for t in base], val, test, seed)
    # Added documents go anywhere in the list: in front, so every old index shifts.
    after = split_or_error([doc(t) for t in extra if t not in base] + [doc(t) for t in base], val, test, seed)
    assume(not isinstance(before, PicoError) and not isinstance(after, PicoError))
    where_before = {d.text: name for name, part in before.items() for d in part}
    where_after = {d.text: name for name, part in after.items() for d in part}
    assert all(where_after[text] == where_before[text] for text in base)


def test_split_ratios_are_close_to_fractions_and_seed_matters():
    docs = [doc(f"document {i}") for i in range(4000)]
    splits = split_documents(docs, val_fraction=0.1, test_fraction=0.2, seed=7)
    assert 320 <= len(splits["val"]) <= 480 and 680 <= len(splits["test"]) <= 920
    other = split_documents(docs, val_fraction=0.1, test_fraction=0.2, seed=8)
    assert other["val"] != splits["val"]


def test_duplicate_texts_land_in_the_same_split():
    docs = [doc(f"d{i}") for i in range(200)] + [doc("d5", "stories")]
    splits = split_documents(docs, val_fraction=0.2, test_fraction=0.2, seed=1)
    assert sum(1 for part in splits.values() for d in part if d.text == "d5") == 2
    assert len({name for name, part in splits.items() for d in part if d.text == "d5"}) == 1


@pytest.mark.parametrize("val, test, pattern", [(-0.1, 0.1, "val_fraction is -0.1"), (0.1, 1.0, "test_fraction is 1.0"), (0.5, 0.5, "sum must be below 1"), (float("nan"), 0.1, "val_fraction is nan")])
def test_invalid_fractions(val, test, pattern):
    with raises_pico(pattern) as err:
        split_documents([doc("a")], val_fraction=val, test_fraction=test, seed=0)
    assert_one_sentence(str(err.value))


def test_empty_split_names_split_and_counts():
    with raises_pico(r"the (val|test) split would be empty \(3 documents split as train \d, val \d, test \d") as err:
        split_documents([doc("a"), doc("b"), doc("c")], val_fraction=0.01, test_fraction=0.01, seed=0)
    assert "add documents" in str(err.value)
    assert_one_sentence(str(err.value))
    # A zero fraction asks for no such split, so an empty split is fine there.
    assert split_documents([doc("a")], val_fraction=0.0, test_fraction=0.0, seed=0) == {"train": [doc("a")], "val": [], "test": []}


# ---------------------------------------------------------------------------- mix

main_docs = [doc(f"main {i}", "tinystories") for i in range(1000)]
custom_docs = [doc(f"custom {i}") for i in range(400)]


def test_mix_keeps_all_main_and_adds_custom_for_the_target_share():
    mixed = mix_documents(main_docs, custom_docs, custom_weight=0.2, limit_custom=None, seed=3)
    assert mixed[:1000] == main_docs
    added = mixed[1000:]
    assert len(added) == 250  # 0.2 / 0.8 * 1000, so custom is exactly 20% of the result
    assert [custom_docs.index(d) for d in added] == sorted(custom_docs.index(d) for d in added)
    assert mix_documents(main_docs, custom_docs, custom_weight=0.2, limit_custom=None, seed=3) == mixed


def test_mix_never_repeats_scarce_custom_text():
    mixed = mix_documents(main_docs, custom_docs[:10], custom_weight=0.5, limit_custom=None, seed=0)
    assert mixed == main_docs + custom_docs[:10]


def test_mix_limit_caps_custom_with_a_seeded_order_stable_sample():
    custom_only = mix_documents(main_docs, custom_docs, custom_weight=1.0, limit_custom=30, seed=5)
    assert len(custom_only) == 30 and set(custom_only) <= set(custom_docs)
    assert [custom_docs.index(d) for d in custom_only] == sorted(custom_docs.index(d) for d in custom_only)
    assert custom_only != custom_docs[:30]  # sampled, not just the head
    assert mix_documents(main_docs, custom_docs, custom_weight=1.0, limit_custom=30, seed=6) != custom_only
    assert mix_documents(main_docs, custom_docs, custom_weight=0.0, limit_custom=30, seed=5) == main_docs
    capped_then_mixed = mix_documents(main_docs, custom_docs, custom_weight=0.2, limit_custom=30, seed=5)
    assert capped_then_mixed[1000:] == custom_only  # 250 wanted, only 30 allowed


@pytest.mark.parametrize("weight", [-0.1, 1.5, float("nan"), True])
def test_mix_weight_outside_unit_interval(weight):
    with raises_pico("data.mix.weight") as err:
        mix_documents(main_docs, custom_docs, custom_weight=weight, limit_custom=None, seed=0)
    assert_one_sentence(str(err.value))


def test_mix_rejects_weight_without_custom_docs_and_bad_limit():
    with raises_pico("no custom documents"):
        mix_documents(main_docs, [], custom_weight=0.3, limit_custom=None, seed=0)
    with raises_pico("data.mix.limit"):
        mix_documents(main_docs, custom_docs, custom_weight=0.3, limit_custom=-1, seed=0)
