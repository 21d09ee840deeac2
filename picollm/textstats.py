"""Diversity and repetition of generated text, measured over whitespace tokens.

Both statistics work on `text.split()` (so punctuation stays attached to its word) and never let
an n-gram span two texts: each text is a separate sample.
"""

from __future__ import annotations

from collections.abc import Iterator

from picollm.errors import PicoError


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise PicoError(f"n={n!r} is not allowed; the n-gram length must be an integer >= 1")


def _ngrams(text: str, n: int) -> Iterator[tuple[str, ...]]:
    tokens = text.split()
    return (tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct n-grams / total n-grams, pooled over all texts (distinct means: across all texts).

    1.0 means no n-gram occurs twice anywhere; a text shorter than n contributes nothing.
    Returns 0.0 when there is no n-gram at all (no text has n tokens).
    """
    _check_n(n)
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        for gram in _ngrams(text, n):
            seen.add(gram)
            total += 1
    return len(seen) / total if total else 0.0


def repetition_rate(texts: list[str], n: int = 3) -> float:
    """The share of tokens that repeat an n-gram already seen earlier in the same text.

    Precisely: in a text of tokens t_0 .. t_{L-1}, token t_i with i >= n-1 ends the n-gram
    (t_{i-n+1}, ..., t_i); it is a *repeat* if that same n-gram ended at some earlier position
    j < i of the same text (the two occurrences may overlap). The first n-1 tokens of a text end
    no n-gram and are not counted. The rate is repeats / counted tokens, pooled over all texts,
    i.e. the fraction of n-gram occurrences that are not the first of their kind in their text.

    Examples (n=3): "a b c a b c" has n-grams abc, bca, cab, abc -> 1 repeat of 4 -> 0.25;
    "a a a a" has aaa twice -> 0.5. Returns 0.0 when there is no n-gram at all.
    """
    _check_n(n)
    repeats = counted = 0
    for text in texts:
        seen_in_text: set[tuple[str, ...]] = set()
        for gram in _ngrams(text, n):
            counted += 1
            if gram in seen_in_text:
                repeats += 1
            seen_in_text.add(gram)
    return repeats / counted if counted else 0.0
