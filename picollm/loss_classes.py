"""Where a model's loss goes: nats per validation document, split by the kind of token predicted.

The entropy floor says how far a model is from perfect; this says where the distance lies. Every
prediction of a split's token cache gets one class, from the word its token begins or continues:

    name_first   a character's name at its first mention in the document (story source only;
                the names are picollm.data.stories.character_names())
    name_repeat  a later mention of a name the document already used
    word_repeat  any other word of 4+ letters the document already used (case-insensitive)
    other        everything else: function words, punctuation, first mentions of other words
    end          the end-of-text separator that closes each document

A model that copies from its context pays almost nothing for a repeat; a model that does not pays
for it what it pays for a first mention. The story generator draws each name uniformly from ~300,
so that difference is large and visible (docs/findings.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from picollm.errors import PicoError
from picollm.tokenizer import Tokenizer

CLASSES = ("name_first", "name_repeat", "word_repeat", "other", "end")
NAME_FIRST, NAME_REPEAT, WORD_REPEAT, OTHER, END = range(len(CLASSES))
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
MIN_REPEAT_LETTERS = 4  # shorter recurring words are mostly function words ("the", "and", "was")


def word_classes(text: str, names: frozenset[str]) -> list[tuple[int, int, int]]:
    """(start, end, class) of every word of `text`, in order."""
    seen: set[str] = set()
    spans = []
    for match in WORD.finditer(text):
        word = match.group()
        key = word.lower()
        if word in names:
            kind = NAME_REPEAT if key in seen else NAME_FIRST
        elif len(word) >= MIN_REPEAT_LETTERS and key in seen:
            kind = WORD_REPEAT
        else:
            kind = OTHER
        seen.add(key)
        spans.append((match.start(), match.end(), kind))
    return spans


def document_token_classes(text: str, tokenizer: Tokenizer, names: frozenset[str]) -> list[int]:
    """The class of each of the document's tokens: that of the first word the token overlaps."""
    ids = tokenizer.encode(text)
    _, starts = tokenizer.encoding.decode_with_offsets(ids)
    ends = [*starts[1:], len(text)]
    spans = word_classes(text, names)
    classes, w = [], 0
    for start, end in zip(starts, ends):
        while w < len(spans) and spans[w][1] <= start:  # words wholly before this token
            w += 1
        overlaps = w < len(spans) and spans[w][0] < max(end, start + 1)
        classes.append(spans[w][2] if overlaps else OTHER)
    return classes


def split_token_classes(texts: Iterable[str], tokenizer: Tokenizer, names: frozenset[str], predictions: int) -> np.ndarray:
    """One class per prediction of a token cache built from `texts` (see picollm/data/tokens.py:
    `<eot> doc <eot> doc ... <eot>`, prediction j is of token j+1)."""
    classes: list[int] = []
    for text in texts:
        classes += document_token_classes(text, tokenizer, names)
        classes.append(END)
    if len(classes) != predictions:
        raise PicoError(
            f"the token cache holds {predictions} predictions but its split's documents encode to {len(classes)}; "
            "the cache is stale, rerun `dvc repro tokenize`"
        )
    return np.asarray(classes, dtype=np.int8)


def loss_by_class(nll: np.ndarray, classes: np.ndarray, documents: int) -> dict[str, dict[str, float]]:
    """Per class: nats and tokens per document, and nats per token."""
    table = {}
    for index, name in enumerate(CLASSES):
        chosen = classes == index
        nats, tokens = float(nll[chosen].sum()), int(chosen.sum())
        table[name] = {
            "nats_per_doc": round(nats / documents, 3),
            "tokens_per_doc": round(tokens / documents, 3),
            "nats_per_token": round(nats / tokens, 4) if tokens else None,
        }
    return table
