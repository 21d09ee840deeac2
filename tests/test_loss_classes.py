"""Loss by token class: which word each token belongs to, and that the classes partition the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import helpers as H
from picollm import tokenizer as tokenizer_mod
from picollm.data.stories import character_names
from picollm.data.tokens import TokenStream, write_token_cache
from picollm.errors import PicoError
from picollm.evaluate import eval_metrics, token_nll
from picollm.loss_classes import (
    CLASSES, END, NAME_FIRST, NAME_REPEAT, OTHER, WORD_REPEAT, document_token_classes, loss_by_class,
    split_token_classes, word_classes,
)
from picollm.models.registry import build_model

STORY = 'Nils met Max at the canyon. "Hello, Max!" said Nils. The canyon was big, and Nils was brave.'


def kinds(text: str, names: frozenset[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for start, end, kind in word_classes(text, names):
        out.setdefault(CLASSES[kind], []).append(text[start:end])
    return out


def test_names_and_words_are_first_mentions_then_recurrences():
    got = kinds(STORY, character_names())
    assert got["name_first"] == ["Nils", "Max"]
    assert got["name_repeat"] == ["Max", "Nils", "Nils"]
    assert got["word_repeat"] == ["canyon"]  # "was" recurs too, but short words are function words
    assert "was" in got["other"] and "the" in got["other"]


def test_without_names_a_recurring_name_is_a_recurring_word():
    got = kinds(STORY, frozenset())
    assert "name_first" not in got and "name_repeat" not in got
    assert got["word_repeat"] == ["Nils", "canyon", "Nils"]  # "Max" is 3 letters: not counted


def test_every_token_of_a_name_gets_the_name_class():
    tok = tokenizer_mod.load_gpt2()
    ids = tok.encode(STORY)
    classes = document_token_classes(STORY, tok, character_names())
    assert len(classes) == len(ids)
    pieces = {kind: "".join(tok.decode([i]) for i, c in zip(ids, classes) if c == kind) for kind in range(len(CLASSES))}
    assert pieces[NAME_FIRST].split() == ["Nils", "Max"]
    assert pieces[NAME_REPEAT].split() == ["Max", "Nils", "Nils"]
    assert pieces[WORD_REPEAT].strip() == "canyon"
    assert "said" in pieces[OTHER] and "!" in pieces[OTHER]


def test_classes_align_with_the_token_cache_and_a_stale_cache_is_refused(tmp_path):
    texts = H.synthetic_texts(6)
    tok = H.make_token_dir(tmp_path / "tokens", texts)
    write_token_cache(texts, tok, tmp_path / "val.bin", threads=1)
    stream = TokenStream.open(tmp_path / "val.bin", tok.vocab_size)
    classes = split_token_classes(texts, tok, character_names(), len(stream) - 1)
    # The cache is <eot> doc <eot> doc ... <eot>: the END class sits exactly on the separators.
    targets = np.asarray(stream.tokens[1:])
    assert np.array_equal(classes == END, targets == tok.eot_id)
    with pytest.raises(PicoError, match="stale, rerun `dvc repro tokenize`"):
        split_token_classes(texts[:-1], tok, character_names(), len(stream) - 1)


def test_the_classes_partition_the_val_loss_and_leave_the_metrics_unchanged(tmp_path):
    texts = H.synthetic_texts(8)
    tok = H.make_token_dir(tmp_path / "tokens", texts)
    write_token_cache(texts, tok, tmp_path / "val.bin", threads=1)
    stream = TokenStream.open(tmp_path / "val.bin", tok.vocab_size)
    torch.manual_seed(0)
    model = build_model(H.TINY_TRANSFORMER, vocab_size=tok.vocab_size, block_size=32, pad_id=tok.eot_id).eval()
    classes = split_token_classes(texts, tok, character_names(), len(stream) - 1)
    size = {"val": sum(len(t.encode()) for t in texts)}
    plain = eval_metrics(model, {"val": stream}, size, 32, None, 1.0)
    split = eval_metrics(model, {"val": stream}, size, 32, None, 1.0, val_classes=(classes, len(texts)))
    assert {k: v for k, v in split.items() if not k.startswith("val_nats") and k != "val_loss_by_class"} == plain
    nll = token_nll(model, stream, 32)
    total, count = float(nll.sum()), len(nll)
    assert split["val_nats_per_doc"] == round(total / len(texts), 3)
    by_class = split["val_loss_by_class"]
    assert sum(c["tokens_per_doc"] for c in by_class.values()) == pytest.approx(count / len(texts), abs=1e-2)
    assert sum(c["nats_per_doc"] for c in by_class.values()) == pytest.approx(total / len(texts), abs=1e-2)


def test_an_empty_class_has_no_per_token_loss():
    table = loss_by_class(np.array([1.0, 2.0]), np.array([OTHER, END], dtype=np.int8), documents=1)
    assert table["name_first"] == {"nats_per_doc": 0.0, "tokens_per_doc": 0.0, "nats_per_token": None}
    assert table["end"]["nats_per_token"] == 2.0
