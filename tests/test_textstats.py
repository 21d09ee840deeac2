"""Text statistics: distinct-n and repetition rate, by hand and against brute-force definitions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from picollm.errors import PicoError
from picollm.textstats import distinct_n, repetition_rate


def test_distinct_n_counts_over_all_texts():
    assert distinct_n(["a b c", "a b d"], 1) == 4 / 6
    assert distinct_n(["a b c", "a b d"], 2) == 3 / 4  # "a b" twice, "b c", "b d"
    assert distinct_n(["the cat the cat"], 2) == 2 / 3


def test_distinct_n_splits_on_any_whitespace_and_keeps_punctuation():
    assert distinct_n(["a  b\nc\t a"], 1) == 3 / 4
    assert distinct_n(["end. end"], 1) == 1.0


def test_ngrams_never_span_two_texts():
    # Joined, "b c" would be a bigram; as separate texts there are only "a b" and "c d".
    assert distinct_n(["a b", "c d"], 2) == 1.0
    assert repetition_rate(["x y z", "x y z"]) == 0.0  # a repeat counts only within one text


def test_texts_shorter_than_n_contribute_nothing():
    assert distinct_n(["a b", "a", ""], 3) == 0.0
    assert distinct_n(["a b", "c d e"], 3) == 1.0
    assert repetition_rate([]) == 0.0
    assert repetition_rate(["one two"]) == 0.0


def test_repetition_rate_examples_from_the_docstring():
    assert repetition_rate(["a b c a b c"]) == 1 / 4
    assert repetition_rate(["a a a a"]) == 1 / 2  # overlapping occurrences count
    assert repetition_rate(["a b c d e f"]) == 0.0


def test_repetition_rate_pools_over_texts_and_honours_n():
    texts = ["a b c a b c", "x y z w"]
    assert repetition_rate(texts) == 1 / 6  # 1 repeat among 4 + 2 trigrams
    assert repetition_rate(["a b a b"], n=1) == 2 / 4
    assert repetition_rate(["a b a b"], n=2) == 1 / 3


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_n_must_be_a_positive_integer(n):
    with pytest.raises(PicoError, match=r"n=.* integer >= 1"):
        distinct_n(["a b"], n)
    with pytest.raises(PicoError, match=r"n=.* integer >= 1"):
        repetition_rate(["a b"], n)


texts_strategy = st.lists(st.lists(st.sampled_from("abc"), max_size=10).map(" ".join), max_size=4)


@settings(max_examples=100, deadline=None)
@given(texts=texts_strategy, n=st.integers(1, 4))
def test_both_agree_with_brute_force_definitions(texts, n):
    occurrences = []  # (text index, position, n-gram)
    for index, text in enumerate(texts):
        words = text.split()
        occurrences += [(index, i, tuple(words[i : i + n])) for i in range(len(words) - n + 1)]
    if not occurrences:
        assert distinct_n(texts, n) == repetition_rate(texts, n) == 0.0
        return
    assert distinct_n(texts, n) == len({gram for _, _, gram in occurrences}) / len(occurrences)
    repeats = sum(
        any(same_text == index and earlier < pos and same_gram == gram for same_text, earlier, same_gram in occurrences)
        for index, pos, gram in occurrences
    )
    assert repetition_rate(texts, n) == repeats / len(occurrences)
    assert 0.0 < distinct_n(texts, n) <= 1.0 and 0.0 <= repetition_rate(texts, n) < 1.0
