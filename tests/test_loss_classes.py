"""Loss by token class: which word each token belongs to, and that the classes partition the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from picollm import tokenizer as tokenizer_mod
from picollm.data.stories import character_names
from picollm.data.tokens import TokenStream, write_token_cache
from picollm.errors import PicoError
from picollm.evaluate import eval_metrics
from picollm.loss_classes import (
    CLASSES,
    END,
    NAME_FIRST,
    NAME_REPEAT,
    OTHER,
    WORD_REPEAT,
    document_token_classes,
    loss_by_class,
    split_token_classes,
    word_classes,
)
from picollm.models.registry import build_model

import helpers as H
from test_metrics_reference import brute_force_nll

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


def test_each_class_gets_the_reference_loss_of_its_own_predictions_and_the_metrics_stay(tmp_path):
    """Per document, each token's class and its brute-force NLL (one forward pass per prediction),
    summed by class by hand: the table must hold those sums, cell by cell."""
    texts = H.synthetic_texts(8)
    tok = H.make_token_dir(tmp_path / "tokens", texts)
    write_token_cache(texts, tok, tmp_path / "val.bin", threads=1)
    stream = TokenStream.open(tmp_path / "val.bin", tok.vocab_size)
    torch.manual_seed(0)
    model = build_model(H.TINY_TRANSFORMER, vocab_size=tok.vocab_size, block_size=32, pad_id=tok.eot_id).eval()
    with torch.no_grad():
        model.head.weight.mul_(20.0)  # losses that differ from token to token, so a misplaced one shows
    classes = split_token_classes(texts, tok, character_names(), len(stream) - 1)
    size = {"val": sum(len(t.encode()) for t in texts)}
    plain = eval_metrics(model, {"val": stream}, size, 32, None, 1.0, eot_id=tok.eot_id)
    split = eval_metrics(model, {"val": stream}, size, 32, None, 1.0, val_classes=(classes, len(texts)), eot_id=tok.eot_id)
    assert {k: v for k, v in split.items() if not k.startswith("val_nats") and k != "val_loss_by_class"} == plain

    reference = brute_force_nll(model, np.asarray(stream.tokens).tolist(), 32, tok.eot_id)
    nats, tokens = dict.fromkeys(CLASSES, 0.0), dict.fromkeys(CLASSES, 0)
    position = 0  # prediction j is of token j+1: the first document's first token is prediction 0
    for text in texts:
        for kind in [*document_token_classes(text, tok, character_names()), END]:
            nats[CLASSES[kind]] += reference[position]
            tokens[CLASSES[kind]] += 1
            position += 1
    assert position == len(reference)
    documents = len(texts)
    for name, cell in split["val_loss_by_class"].items():
        assert cell["tokens_per_doc"] == round(tokens[name] / documents, 3), name
        assert cell["nats_per_doc"] == pytest.approx(nats[name] / documents, abs=2e-3), name
    assert split["val_nats_per_doc"] == pytest.approx(reference.sum() / documents, abs=2e-3)
    assert tokens["end"] == documents and min(tokens.values()) > 0  # every class is exercised


def test_an_empty_class_has_no_per_token_loss():
    table = loss_by_class(np.array([1.0, 2.0]), np.array([OTHER, END], dtype=np.int8), documents=1)
    assert table["name_first"] == {"nats_per_doc": 0.0, "tokens_per_doc": 0.0, "nats_per_token": None}
    assert table["end"]["nats_per_token"] == 2.0
