"""Independent references for the numbers users compare: val loss, bits per byte, the floor, the baseline.

- `token_nll` (every metric of `evaluate@<model>`) against a brute-force reference that scores
  each prediction with its own forward pass, and the sliding windows it is built on against
  their contract: every prediction scored exactly once, with enough context.
- `corpus_stats` (the entropy floor) and `unigram_bpb` (the no-context baseline) on hand-built
  inputs whose answers are worked out below, in exact arithmetic where possible.
- The floor's estimator against the exact entropy of a grammar small enough to enumerate.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from picollm.data import stories
from picollm.data import tokens as tokens_mod
from picollm.data.prepare import corpus_stats
from picollm.data.split import Document
from picollm.data.tokens import TokenStream, unigram_bpb
from picollm.evaluate import LN2, eval_metrics, token_nll
from picollm.models.registry import build_model

from grammar_enumeration import every_choice_sequence, tiny_grammar

VOCAB = 19
EOT = 0
BLOCK = 8

# One spec per way a model can see its context: learned positions, RoPE with grouped K/V heads,
# a fixed k-token window, and recurrence.
SPECS = {
    "transformer-learned": {"family": "transformer", "preset": "gpt2", "d_model": 16, "n_layer": 2, "n_head": 2, "d_ff": 32},
    "transformer-rope-gqa": {"family": "transformer", "preset": "llama3lite", "d_model": 16, "n_layer": 1, "n_head": 4,
                             "n_kv_head": 2, "d_ff": 32},
    "kgram": {"family": "kgram", "variant": "embed", "k": 3, "d_embed": 8, "hidden": 16},
    "lstm": {"family": "lstm", "d_embed": 8, "hidden": 16, "n_layer": 1},
}


def sharp_model(name: str, block_size: int = BLOCK):
    """A model whose logits differ visibly from position to position (init leaves them near-uniform)."""
    torch.manual_seed(0)
    model = build_model(SPECS[name], vocab_size=VOCAB, block_size=block_size, pad_id=EOT, key=f"models.{name}").eval()
    with torch.no_grad():
        model.head.weight.mul_(20.0)
    return model


def token_stream(tmp_path, count: int, seed: int = 0) -> TokenStream:
    """A cache of `count` random ids (one prediction fewer), written as the tokenize stage writes it."""
    ids = np.random.default_rng(seed).integers(0, VOCAB, count).astype(np.uint16)
    path = tmp_path / f"tokens-{count}-{seed}.bin"
    ids.tofile(path)
    return TokenStream.open(path, VOCAB)


def window_starts(predictions: int, block: int) -> list[int]:
    """evaluate.py's schedule, from its docstring: windows of `block` advancing by half of it, the
    last one moved back to end at the last prediction."""
    stride = max(1, block // 2)
    starts = [0]
    while starts[-1] + block < predictions:
        starts.append(min(starts[-1] + stride, predictions - block))
    return starts


def document_of(ids: list[int], j: int, eot_id: int | None) -> tuple[int, int]:
    """The predictions (begin, end) of prediction j's document: from the end-of-text token at or
    before j that opens it (or the stream's start) up to the next one (or the stream's end)."""
    predictions = len(ids) - 1
    if eot_id is None:
        return 0, predictions
    begin = max((p for p in range(j + 1) if ids[p] == eot_id), default=0)
    end = next((p for p in range(j + 1, predictions) if ids[p] == eot_id), predictions)
    return begin, end


@torch.inference_mode()
def brute_force_nll(model, ids: list[int], block_size: int, eot_id: int | None = None) -> np.ndarray:
    """NLL of each prediction j (token j+1), each from its own forward pass in float64.

    The context of j is everything from the start of the first window of j's document (with
    `eot_id`; else of the stream) that reaches j: a window that skipped or repeated a position,
    or fed a position the wrong context (another document's too), shows here."""
    block = min(block_size, model.max_context)
    out = []
    for j in range(len(ids) - 1):
        begin, end = document_of(ids, j, eot_id)
        start = next(begin + s for s in window_starts(end - begin, block) if j < begin + s + block)
        logits = model(torch.tensor([ids[start : j + 1]])).double()[0, -1]
        out.append(-torch.log_softmax(logits, dim=-1)[ids[j + 1]].item())
    return np.array(out)


# ------------------------------------------------------------------------ the windows' contract


@settings(max_examples=300, deadline=None)
@given(predictions=st.integers(1, 200), block=st.integers(1, 40), stride_share=st.floats(0.01, 1.0))
def test_windows_score_every_prediction_exactly_once_with_enough_context(tmp_path_factory, predictions, block, stride_share):
    stride = max(1, round(block * stride_share))
    path = tmp_path_factory.getbasetemp() / f"arange-{predictions}.bin"
    if not path.exists():
        np.arange(predictions + 1, dtype=np.uint16).tofile(path)  # token i is i: alignment is visible
    stream = TokenStream.open(path, 65536)
    scored = np.zeros(predictions, dtype=np.int64)
    for start, x, y, first in stream.windows(block, stride):
        assert 1 <= len(x) <= block and start >= 0
        assert x.tolist() == list(range(start, start + len(x))) and y.tolist() == [i + 1 for i in x.tolist()]
        for offset in range(first, len(x)):
            j = start + offset
            scored[j] += 1
            # All the history there is, or at least block - stride tokens of it besides the input itself.
            assert offset + 1 >= min(j + 1, block - stride + 1), (start, offset, j)
    assert scored.tolist() == [1] * predictions


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.integers(0, 4), min_size=2, max_size=120), block=st.integers(1, 24))
def test_document_windows_never_cross_a_document_and_score_every_prediction_once(tmp_path_factory, ids, block):
    """Token 0 is the end-of-text token: every window starts at or after the one that opens its
    document and holds no other, so no prediction sees the document before it."""
    path = tmp_path_factory.mktemp("docs") / "ids.bin"
    np.asarray(ids, dtype=np.uint16).tofile(path)
    stream = TokenStream.open(path, 5)
    scored = np.zeros(len(ids) - 1, dtype=np.int64)
    for start, x, _, first in stream.windows(block, max(1, block // 2), eot_id=0):
        assert 0 not in x.tolist()[1:], (start, x.tolist())
        for offset in range(first, len(x)):
            j = start + offset
            scored[j] += 1
            begin, _ = document_of(ids, j, 0)
            assert start >= begin and offset + 1 >= min(j - begin + 1, block - max(1, block // 2) + 1)
    assert scored.tolist() == [1] * (len(ids) - 1)


@pytest.mark.parametrize("eot_id", [None, EOT], ids=["stream", "documents"])
@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("count", [2, BLOCK - 3, BLOCK + 1, BLOCK + 2, 5 * BLOCK + 4],
                         ids=["one-prediction", "shorter", "equal", "one-more", "much-longer"])
def test_token_nll_equals_the_brute_force_reference(tmp_path, name, count, eot_id):
    model = sharp_model(name)
    stream = token_stream(tmp_path, count)
    ids = np.asarray(stream.tokens).tolist()
    reference = brute_force_nll(model, ids, BLOCK, eot_id)
    got = token_nll(model, stream, BLOCK, eot_id)
    assert got.shape == (count - 1,)
    np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-6)
    # The check can fail: a prediction scored with another context would differ by far more than
    # the tolerance, since the logits vary that much from position to position.
    assert count == 2 or np.ptp(reference) > 1.0
    if eot_id is not None and EOT in ids[1:-1]:  # a document opens inside: its context must differ
        assert not np.allclose(reference, brute_force_nll(model, ids, BLOCK, None), rtol=1e-5, atol=1e-6)


def test_token_nll_crops_windows_to_the_models_context(tmp_path):
    """A learned position table shorter than the requested block: windows shrink to fit it."""
    model = sharp_model("transformer-learned", block_size=6)
    stream = token_stream(tmp_path, 40, seed=3)
    reference = brute_force_nll(model, np.asarray(stream.tokens).tolist(), 6)
    np.testing.assert_allclose(token_nll(model, stream, 32, None), reference, rtol=1e-5, atol=1e-6)
    # Batching windows together changes nothing.
    np.testing.assert_allclose(token_nll(model, stream, 32, None, batch_windows=1), reference, rtol=1e-5, atol=1e-6)


def test_eval_metrics_are_the_reference_nll_in_every_unit(tmp_path):
    model = sharp_model("lstm")
    streams = {"val": token_stream(tmp_path, 3 * BLOCK + 1, seed=1), "test": token_stream(tmp_path, 2 * BLOCK, seed=2)}
    sizes = {"val": 41, "test": 29}
    floor = 0.25
    metrics = eval_metrics(model, streams, sizes, BLOCK, floor, 1.5, eot_id=EOT)
    for split, stream in streams.items():
        nll = brute_force_nll(model, np.asarray(stream.tokens).tolist(), BLOCK, EOT)
        assert metrics[f"{split}_loss"] == pytest.approx(nll.mean(), abs=2e-6)
        assert metrics[f"{split}_ppl"] == pytest.approx(math.exp(nll.mean()), rel=1e-5)
        assert metrics[f"{split}_bpb"] == pytest.approx(nll.sum() / math.log(2) / sizes[split], abs=2e-6)
    val_bpb = brute_force_nll(model, np.asarray(streams["val"].tokens).tolist(), BLOCK, EOT).sum() / math.log(2) / sizes["val"]
    assert metrics["floor_gap_bpb"] == pytest.approx(val_bpb - floor, abs=2e-6)
    assert metrics["floor_gap_pct"] == pytest.approx(100 * (val_bpb / floor - 1), abs=2e-3)
    assert (metrics["unigram_val_bpb"], metrics["entropy_floor_bpb"], metrics["params"]) == (1.5, floor, model.num_params())


# ------------------------------------------------------------------------ the unigram baseline


def write_cache(path, ids: list[int]) -> None:
    np.array(ids, dtype=np.uint16).tofile(path)


def test_unigram_bpb_is_the_add_one_smoothed_train_histogram_worked_by_hand(tmp_path, monkeypatch):
    # Train counts (3, 1, 0, 0) + 1 each = (4, 2, 1, 1) out of 8. The val cache <eot> 1 2 0 predicts
    # 1, 2 and 0 (the leading separator is context): P = 2/8 * 1/8 * 4/8 = 2^-6, i.e. 6 bits, over
    # 3 bytes of text: exactly 2 bits per byte.
    val = tmp_path / "val.bin"
    write_cache(val, [0, 1, 2, 0])
    counts = np.array([3, 1, 0, 0], dtype=np.int64)
    assert unigram_bpb(counts, val, 4, 3) == pytest.approx(2.0, abs=1e-12)
    # Read in chunks smaller than the cache, the answer is the same.
    monkeypatch.setattr(tokens_mod, "READ_CHUNK_TOKENS", 2)
    assert unigram_bpb(counts, val, 4, 3) == pytest.approx(2.0, abs=1e-12)


def test_unigram_bpb_on_a_cache_of_one_token_type_and_unseen_tokens(tmp_path):
    # Counts (0, 5, 0): smoothed (1, 6, 1) / 8. Val <eot> 2 2: two unseen tokens at 1/8 each = 6 bits.
    val = tmp_path / "val.bin"
    write_cache(val, [0, 2, 2])
    assert unigram_bpb(np.array([0, 5, 0]), val, 3, 6) == pytest.approx(1.0, abs=1e-12)
    # A vocab of 7 and counts (7, 0, ...): smoothed 8 / 14 and 1 / 14; val <eot> 0 1.
    write_cache(val, [0, 0, 1])
    expected = -(math.log2(8 / 14) + math.log2(1 / 14)) / 5
    assert unigram_bpb(np.array([7, 0, 0, 0, 0, 0, 0]), val, 7, 5) == pytest.approx(expected, abs=1e-12)


def test_the_token_cache_counts_are_its_histogram(tmp_path):
    """The baseline is fit on `encode_into`'s counts: they must be the cache's own histogram."""
    from helpers import make_token_dir, synthetic_texts

    tok = make_token_dir(tmp_path, synthetic_texts(40))
    texts = synthetic_texts(40)[:7]
    result = tokens_mod.write_token_cache(texts, tok, tmp_path / "some.bin", threads=1)
    ids = np.fromfile(tmp_path / "some.bin", dtype=np.uint16)
    assert ids.tolist() == [tok.eot_id] + [i for text in texts for i in [*tok.encode(text), tok.eot_id]]
    assert result["counts"].tolist() == np.bincount(ids, minlength=tok.vocab_size).tolist()
    assert (result["tokens"], result["bytes"]) == (len(ids), sum(len(t.encode("utf-8")) for t in texts))


# ------------------------------------------------------------------------ the entropy floor


def doc(text: str, logprob: float | None, name_logprob: float | None = None, source: str = "stories") -> Document:
    return Document(text=text, source=source, logprob=logprob, name_logprob=name_logprob)


def test_corpus_stats_of_a_hand_built_corpus():
    splits = {
        "train": [doc("abc", -1.0, -0.5), doc("é", None, source="text")],  # "é" is 2 UTF-8 bytes
        # val: 3 + 5 = 8 bytes and -ln P = 2 ln 2 + 6 ln 2 = 8 ln 2 nats, i.e. 8 bits: 1 bit per byte.
        "val": [doc("xyz", -2 * LN2, -LN2), doc("hello", -6 * LN2, -0.25)],
        "test": [doc("€", -3.0, -1.0)],  # 3 bytes
    }
    assert corpus_stats(splits) == {
        "splits": {
            "train": {"documents": 2, "bytes": 5, "sources": {"stories": 1, "text": 1}},
            "val": {"documents": 2, "bytes": 8, "sources": {"stories": 2}},
            "test": {"documents": 1, "bytes": 3, "sources": {"stories": 1}},
        },
        "entropy_floor_nats_per_story": round(8 * LN2 / 2, 6),
        "entropy_floor_bpb": 1.0,
        "entropy_floor_name_nats_per_story": round((LN2 + 0.25) / 2, 6),
    }


def test_the_floor_is_null_when_any_val_document_has_no_exact_probability():
    splits = {"train": [doc("a", -1.0)], "val": [doc("b", -1.0), doc("c", None, source="text")], "test": [doc("d", -1.0)]}
    stats = corpus_stats(splits)
    assert stats["entropy_floor_bpb"] is None
    assert "entropy_floor_nats_per_story" not in stats and "entropy_floor_name_nats_per_story" not in stats
    # Known probabilities without the name share: the floor, but no name part.
    splits["val"] = [doc("b", -1.0), doc("c", -3.0)]
    stats = corpus_stats(splits)
    assert (stats["entropy_floor_nats_per_story"], stats["entropy_floor_bpb"]) == (2.0, round(4 / LN2 / 2, 6))
    assert "entropy_floor_name_nats_per_story" not in stats


def test_the_floor_estimate_matches_the_exact_entropy_of_an_enumerable_grammar(monkeypatch):
    """Sample the floor the way the pipeline does (the generator's own log P, averaged by
    corpus_stats) from a grammar whose every story can be listed: it must land within 4 standard
    errors of the exact entropy, in nats per story and in bits per byte.

    The stories go to corpus_stats without de-duplication: this grammar has 57 stories, and
    dropping repeats would bias the estimate; the real grammar's stories never repeat."""
    grammar = tiny_grammar()
    every = [story for _, story in every_choice_sequence(grammar)]
    p = np.array([math.exp(s.logprob) for s in every])
    nats = np.array([-s.logprob for s in every])
    size = np.array([len(s.text.encode()) for s in every], dtype=np.float64)
    assert len({s.text for s in every}) == len(every) == 57 and p.sum() == pytest.approx(1.0, abs=1e-12)
    entropy = float(p @ nats)
    bpb = entropy / math.log(2) / float(p @ size)
    # Standard errors of the mean of -log P, and of the ratio sum(nats) / sum(bytes) (delta method).
    count = 4000
    se_nats = math.sqrt(float(p @ (nats - entropy) ** 2) / count)
    ratio = entropy / float(p @ size)
    se_bpb = math.sqrt(float(p @ (nats - ratio * size) ** 2) / count) / float(p @ size) / math.log(2)

    monkeypatch.setattr(stories, "_GRAMMAR", grammar)
    sampled = [doc(s.text, s.logprob, s.name_logprob) for s in stories.iter_stories(count, seed=5)]
    stats = corpus_stats({"train": [], "val": sampled, "test": []})
    assert abs(stats["entropy_floor_nats_per_story"] - entropy) < 4 * se_nats, (stats, entropy, se_nats)
    assert abs(stats["entropy_floor_bpb"] - bpb) < 4 * se_bpb, (stats, bpb, se_bpb)
    # The bars are tight enough to matter: a floor off by a tenth would be caught.
    assert 4 * se_nats < 0.1 * entropy and 4 * se_bpb < 0.1 * bpb
    # And the sample is the generator's own distribution: each story about as often as P says.
    frequency = {s.text: 0 for s in every}
    for document in sampled:
        frequency[document.text] += 1
    chi_square = sum((frequency[s.text] - count * pi) ** 2 / (count * pi) for s, pi in zip(every, p))
    assert chi_square < 100  # 56 degrees of freedom: P(chi-square > 100) < 1e-3
