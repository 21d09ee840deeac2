"""Attention maps, induction and previous-token scores, in-context learning, the `attention` CLI
and the interpretability figures (picollm/interpret.py, picollm/interpret_plots.py)."""

from __future__ import annotations

import dataclasses
import json
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from picollm import cli
from picollm.checkpoint import save_checkpoint
from picollm.errors import PicoError
from picollm.interpret import (
    head_scores,
    in_context_score,
    induction_scores,
    position_nll,
    previous_token_scores,
    repeated_random_tokens,
    strongest_head,
    top_attended,
)
from picollm.interpret_plots import attention_picture, head_heatmap, phase_change_plot
from picollm.interpret_training import StoryAttention, story_attention_pairs, story_attention_scores
from picollm.io import write_json
from picollm.loss_classes import NAME_REPEAT, OTHER
from picollm.models.loading import load_model
from picollm.models.presets import TRANSFORMER_PRESETS
from picollm.models.registry import build_model
from picollm.tokenizer import save, train_bpe

# The copy task: a 2-layer RoPE transformer learns to continue random tokens repeated twice. The
# period varies per batch (8..16), so no fixed positional offset solves it: the model must find
# the earlier occurrence of the current token, i.e. build an induction head.
COPY_VOCAB, COPY_PERIODS, COPY_STEPS, COPY_SCORE_PERIOD = 32, range(8, 17), 400, 10
COPY_SPEC = {"family": "transformer", "preset": "gptoss", "d_model": 64, "n_layer": 2, "n_head": 4, "d_ff": 128}


# ---------------------------------------------------------------- hand-built patterns


def dyadic_pattern(T: int, rng: random.Random) -> torch.Tensor:
    """A causal (T, T) pattern whose weights are multiples of 1/64: every mean below is exact."""
    attn = torch.zeros(T, T, dtype=torch.float64)
    for i in range(T):
        counts = [0] * (i + 1)
        for _ in range(64):
            counts[rng.randrange(i + 1)] += 1
        attn[i, : i + 1] = torch.tensor(counts, dtype=torch.float64) / 64
    return attn


def test_previous_token_score_is_the_mean_of_attn_i_to_i_minus_1():
    rng = random.Random(0)
    patterns = torch.stack([torch.stack([dyadic_pattern(9, rng) for _ in range(3)]) for _ in range(2)])  # (2, 3, 9, 9)
    scores = previous_token_scores(patterns)
    assert scores.shape == (2, 3)
    for layer in range(2):
        for head in range(3):
            attn = patterns[layer, head]
            assert scores[layer, head].item() == sum(attn[i, i - 1].item() for i in range(1, 9)) / 8
    with_start = previous_token_scores(patterns, offset=1)  # query 1 (looking at the start token) is skipped
    assert with_start[1, 2].item() == sum(patterns[1, 2, i, i - 1].item() for i in range(2, 9)) / 7
    per_layer = previous_token_scores([patterns[0], patterns[1]])  # a per-layer list stacks
    assert torch.equal(per_layer, scores)

    shifted = torch.zeros(6, 6).index_put_((torch.arange(1, 6), torch.arange(0, 5)), torch.tensor(1.0))
    shifted[0, 0] = 1.0
    assert previous_token_scores(shifted).item() == 1.0
    assert previous_token_scores(torch.eye(6)).item() == 0.0


def test_induction_score_is_the_mean_over_the_second_half_of_attn_i_to_i_minus_n_plus_1():
    rng = random.Random(1)
    period = 4
    patterns = torch.stack([dyadic_pattern(2 * period, rng) for _ in range(5)])
    scores = induction_scores(patterns, period)
    for head in range(5):
        attn = patterns[head]
        expected = sum(attn[i, i - period + 1].item() for i in range(period, 2 * period)) / period
        assert scores[head].item() == expected
    # With a start token the sequence is shifted by one; query i = 1 + n (first of the second half) is counted.
    start = torch.stack([dyadic_pattern(2 * period + 1, rng) for _ in range(2)])
    expected = sum(start[1, i, i - period + 1].item() for i in range(1 + period, 1 + 2 * period)) / period
    assert induction_scores(start, period, offset=1)[1].item() == expected


def test_a_perfect_induction_pattern_scores_one_and_first_half_rows_do_not_count():
    period, T = 5, 10
    perfect = torch.eye(T)
    for i in range(period, T):
        perfect[i] = 0.0
        perfect[i, i - period + 1] = 1.0
    assert induction_scores(perfect, period).item() == 1.0
    assert previous_token_scores(perfect).item() == 0.0
    # Rows of the first half on the same diagonal (ARENA's diagonal mean would count them) do not count.
    first_half = torch.eye(T)
    first_half[period - 1] = 0.0
    first_half[period - 1, 0] = 1.0
    assert induction_scores(first_half, period).item() == 0.0


def test_scores_reject_patterns_that_do_not_fit():
    with pytest.raises(ValueError, match="must be"):
        previous_token_scores(torch.zeros(2, 4, 5))
    with pytest.raises(ValueError, match="period of 4"):
        induction_scores(torch.zeros(9, 9), 4)  # 9 positions hold 2 x 4 only with a start token
    with pytest.raises(ValueError, match="period of 1"):
        induction_scores(torch.zeros(2, 2), 1)
    assert induction_scores(torch.eye(9), 4, offset=1).item() == 0.0


def test_repeated_random_tokens_are_seeded_distinct_halves_repeated():
    ids = repeated_random_tokens(20, 6, batch=5, seed=3, exclude_ids=[19, 0], start_id=19)
    assert ids.shape == (5, 13) and ids.dtype == torch.long
    assert (ids[:, 0] == 19).all()
    first, second = ids[:, 1:7], ids[:, 7:]
    assert torch.equal(first, second)
    assert all(len(set(row.tolist())) == 6 for row in first)
    assert not ((first == 0) | (first == 19)).any() and int(first.max()) < 20
    assert torch.equal(ids, repeated_random_tokens(20, 6, batch=5, seed=3, exclude_ids=[19, 0], start_id=19))
    assert not torch.equal(ids, repeated_random_tokens(20, 6, batch=5, seed=4, exclude_ids=[19, 0], start_id=19))
    with pytest.raises(PicoError, match=r"period=19 is not allowed; it must lie in \[2, 18\]"):
        repeated_random_tokens(20, 19, batch=1, seed=0, exclude_ids=[19, 0])


# ---------------------------------------------------------------- the explicit attention


def sharpened(model: nn.Module, seed: int = 0) -> nn.Module:
    """Weights large enough that attention is far from uniform, so a wrong mask, RoPE or K/V
    head mapping in the explicit path changes the logits well beyond the tolerance."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.25)
    return model.eval()


@pytest.mark.parametrize("preset", list(TRANSFORMER_PRESETS))
def test_explicit_attention_reproduces_the_forward_logits(preset):
    spec = {"family": "transformer", "preset": preset, "d_model": 32, "n_layer": 2, "n_head": 4, "d_ff": 64}
    if TRANSFORMER_PRESETS[preset]["n_kv_head"] is not None:
        spec["n_kv_head"] = 2  # keep grouped-query attention: two query heads per K/V head
    model = sharpened(build_model(spec, vocab_size=40, block_size=24, pad_id=0))
    idx = torch.randint(0, 40, (3, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(idx)
        logits, maps = model.forward_with_attention(idx)
    assert maps.shape == (3, 2, 4, 24, 24)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(maps.sum(dim=-1), torch.ones(3, 2, 4, 24))
    assert (maps.triu(diagonal=1) == 0).all()  # causal
    assert maps.amax() > 0.9  # the patterns are sharp, so the logits check above is a real check


# ---------------------------------------------------------------- a tiny model learns induction


def train_copy_model(seed: int, steps: int) -> tuple[nn.Module, dict]:
    """The copy-task model after `steps` AdamW steps (loss on the second half), and its scores at init."""
    torch.manual_seed(seed)
    model = build_model(COPY_SPEC, vocab_size=COPY_VOCAB, block_size=2 * max(COPY_PERIODS), pad_id=0)
    at_init = head_scores(model, COPY_VOCAB, COPY_SCORE_PERIOD, batch=16, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 30))
    periods = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        period = COPY_PERIODS[int(torch.randint(len(COPY_PERIODS), (1,), generator=periods))]
        x = repeated_random_tokens(COPY_VOCAB, period, batch=32, seed=seed * 100_000 + step)
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits[:, period - 1 :].flatten(0, 1), x[:, period:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        warmup.step()
    return model.eval(), at_init


@pytest.fixture(scope="module")
def copy_model():
    return train_copy_model(seed=0, steps=COPY_STEPS)


def test_a_copy_task_builds_an_induction_head_on_a_previous_token_head(copy_model):
    model, at_init = copy_model
    assert max(map(max, at_init["induction"])) < 0.15
    scores = head_scores(model, COPY_VOCAB, COPY_SCORE_PERIOD, batch=16, seed=0)
    layer, head, best = strongest_head(scores["induction"])
    assert best > 0.6  # the usual threshold is 0.4
    assert layer == 1  # an induction head needs a layer before it that marks each token's predecessor
    assert max(scores["previous_token"][0]) > 0.4
    # Deterministic, to the byte of its JSON.
    again = head_scores(model, COPY_VOCAB, COPY_SCORE_PERIOD, batch=16, seed=0)
    assert json.dumps(again) == json.dumps(scores)
    assert all(isinstance(v, float) and round(v, 6) == v for table in scores.values() for row in table for v in row)


def test_top_attended_follows_the_induction_head(copy_model):
    model, _ = copy_model
    scores = head_scores(model, COPY_VOCAB, COPY_SCORE_PERIOD, batch=16, seed=0)
    layer, head, _ = strongest_head(scores["induction"])
    ids = repeated_random_tokens(COPY_VOCAB, 12, batch=1, seed=9)[0].tolist()
    rows = top_attended(model, ids, layer, head)
    with torch.no_grad():
        _, maps = model.forward_with_attention(torch.tensor([ids]))
    attn = maps[0, layer, head]
    assert len(rows) == len(ids)
    for i, (j, weight) in enumerate(rows):
        assert j <= i and weight == attn[i, j].item() == attn[i, : i + 1].max().item()
    on_target = sum(rows[i][0] == i - 11 for i in range(12, 24))  # the token after the earlier occurrence
    assert on_target >= 10
    with pytest.raises(PicoError, match=r"layer 2 is not allowed; the model's layers are 0..1"):
        top_attended(model, ids, 2, 0)
    with pytest.raises(PicoError, match=r"head 4 is not allowed; the model's heads are 0..3"):
        top_attended(model, ids, 0, 4)
    with pytest.raises(PicoError, match="reads 1 to 32 tokens"):
        top_attended(model, ids * 2, 0, 0)


def test_head_scores_refuse_what_does_not_fit():
    lstm = build_model({"family": "lstm", "d_embed": 8, "hidden": 8, "n_layer": 1}, vocab_size=20, block_size=16, pad_id=0)
    with pytest.raises(PicoError, match="is a lstm model; only transformers have attention heads"):
        head_scores(lstm, 20, 4, batch=2, seed=0)
    model = build_model(COPY_SPEC, vocab_size=20, block_size=16, pad_id=0)
    with pytest.raises(PicoError, match=r"period=9 is not allowed; twice it \(18\) exceeds the model's context of 16"):
        head_scores(model, 20, 9, batch=2, seed=0)
    with pytest.raises(PicoError, match="vocab_size=21 is not allowed"):
        head_scores(model, 21, 4, batch=2, seed=0)


# ---------------------------------------------------------------- in-context learning


def twin_with_context(model: nn.Module, spec: dict, block_size: int) -> nn.Module:
    """The same model (weights, vocabulary, pad) with max_context `block_size`."""
    twin = build_model(spec, vocab_size=model.config.vocab_size, block_size=block_size, pad_id=getattr(model.config, "pad_id", 0))
    twin.load_state_dict(model.state_dict())
    return twin.eval()


def direct_nll(model: nn.Module, sequence: list[int]) -> np.ndarray:
    with torch.no_grad():
        logits = model(torch.tensor([sequence[:-1]]))
    return F.cross_entropy(logits[0], torch.tensor(sequence[1:]), reduction="none").double().numpy()


def test_position_nll_scores_each_story_from_its_start_whatever_the_batch():
    model = sharpened(build_model(COPY_SPEC, vocab_size=30, block_size=16, pad_id=0))
    rng = random.Random(2)
    stories = [[rng.randrange(29) for _ in range(n)] for n in (5, 9, 1, 16)]
    nll = position_nll(model, stories, start_id=29, batch_size=3)  # batches of unequal lengths, padded
    assert nll.shape == (4, 16)
    for row, story in enumerate(stories):
        np.testing.assert_allclose(nll[row, : len(story)], direct_nll(model, [29, *story]), rtol=1e-5, atol=1e-5)
        assert np.isnan(nll[row, len(story) :]).all()
    without_start = position_nll(model, stories, batch_size=1)
    assert np.isnan(without_start[:, 0]).all()
    np.testing.assert_allclose(without_start[1, 1:9], direct_nll(model, stories[1]), rtol=1e-5, atol=1e-5)

    longer = [[rng.randrange(29) for _ in range(20)]]  # a transformer reads at most max_context (16) tokens
    long_nll = position_nll(model, longer, start_id=29)
    np.testing.assert_allclose(long_nll[0, :16], direct_nll(model, [29, *longer[0][:16]]), rtol=1e-5, atol=1e-5)
    assert np.isnan(long_nll[0, 16:]).all()
    with pytest.raises(PicoError, match=r"story 1 holds token id 30; ids must lie in \[0, 30\)"):
        position_nll(model, [[1], [2, 30]])


@pytest.mark.parametrize("spec", [
    {"family": "lstm", "d_embed": 8, "hidden": 16, "n_layer": 2},
    {"family": "kgram", "variant": "embed", "k": 3, "d_embed": 8, "hidden": 16, "n_hidden_layers": 1},
], ids=["lstm", "kgram"])
def test_position_nll_reads_recurrent_and_kgram_models_past_their_block_size(spec):
    model = sharpened(build_model(spec, vocab_size=30, block_size=8, pad_id=29))
    story = [random.Random(3).randrange(29) for _ in range(21)]
    nll = position_nll(model, [story, story[:5]], start_id=29)  # 22 tokens go through `step` in chunks of 8
    reference = direct_nll(twin_with_context(model, spec, 32), [29, *story])
    np.testing.assert_allclose(nll[0], reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(nll[1, :5], reference[:5], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- scores on the stories

START = 9


def test_story_pairs_are_repeats_for_induction_and_earlier_copies_of_a_recurring_name():
    # ids:      START  5  7  3  5  7  3  7     (story tokens 5 7 3 5 7 3 7; class of ids[p + 1] is classes[p])
    ids = [START, 5, 7, 3, 5, 7, 3, 7]
    classes = [OTHER, NAME_REPEAT, OTHER, OTHER, NAME_REPEAT, OTHER, NAME_REPEAT]
    induction, copy = story_attention_pairs(ids, classes, START)
    # a repeated token at q looks at the token after its latest earlier occurrence
    assert induction == [(4, 2), (5, 3), (6, 4), (7, 6)]
    # predicting ids[q + 1] (a recurring name token) from q: every earlier position holding it; the
    # name at ids[2] (q = 1) has no earlier copy and gives no pair
    assert copy == [(4, 2), (6, 2), (6, 5)]


class ScriptedAttention(nn.Module):
    """A stand-in with two heads in one layer: head 0 attends uniformly to 0..q, head 1 only to
    the latest earlier position holding the token that comes next (an ideal copying head)."""

    family = "transformer"
    max_context = 12
    config = dataclasses.make_dataclass("Config", [("n_layer", int), ("n_head", int)])(1, 2)

    def forward_with_attention(self, idx, per_layer=False):
        B, T = idx.shape
        maps = torch.zeros(B, 1, 2, T, T)
        for b in range(B):
            for q in range(T):
                maps[b, 0, 0, q, : q + 1] = 1.0 / (q + 1)
                ahead = int(idx[b, q + 1]) if q + 1 < T else None
                earlier = [k for k in range(1, q + 1) if int(idx[b, k]) == ahead]
                maps[b, 0, 1, q, earlier[-1] if earlier else q] = 1.0
        return None, (list(maps.unbind(1)) if per_layer else maps)


def test_story_scores_are_exact_on_scripted_heads_and_do_not_depend_on_the_batch():
    stories = [[5, 7, 3, 5, 7, 3, 7], [4, 4, 4], [6, 8, 6, 8, 6]]
    classes = [[OTHER, NAME_REPEAT, OTHER, OTHER, NAME_REPEAT, OTHER, NAME_REPEAT], [OTHER, NAME_REPEAT, NAME_REPEAT],
               [OTHER] * 5]
    scores = story_attention_scores(ScriptedAttention(), stories, classes, START, batch_size=3)
    # name copy: queries 4 and 6 of story 0 (ids[5] = 7 at 2; ids[7] = 7 at 2 and 5), 1 and 2 of story 1
    uniform = np.mean([1 / 5, 2 / 7, 1 / 2, 2 / 3])
    assert scores["name_copy"] == [[round(uniform, 6), 1.0]]
    assert story_attention_scores(ScriptedAttention(), stories, classes, START, batch_size=1) == scores


def test_in_context_score_is_late_window_minus_early_window_on_stories_reaching_both():
    nll = np.full((3, 12), np.nan)
    nll[0, :12] = [4, 3, 2, 5, 1, 1, 1, 0.5, 0.25, 0.5, 9, 9]
    nll[1, :10] = [2, 2, 2, 2, 2, 1, 1, 1, 1, 1]
    nll[2, :8] = 7  # ends before the late window: left out
    result = in_context_score(nll, early=2, late=8, window=1)
    early = (3 + 2 + 5 + 2 + 2 + 2) / 6
    late = (0.5 + 0.25 + 0.5 + 1 + 1 + 1) / 6
    assert result == {"in_context_score": round(late - early, 6), "early_nll": round(early, 6),
                      "late_nll": round(late, 6), "stories": 2}
    assert in_context_score(nll, early=1, late=5, window=0)["stories"] == 3
    with pytest.raises(PicoError, match="must start at 0 or later and not overlap"):
        in_context_score(nll, early=2, late=4, window=1)
    with pytest.raises(PicoError, match="must start at 0 or later"):
        in_context_score(nll, early=0, late=8, window=1)
    with pytest.raises(PicoError, match="no story reaches position 13"):
        in_context_score(nll, early=2, late=12, window=1)


# ---------------------------------------------------------------- the `attention` command


@pytest.fixture(scope="module")
def attention_project(tmp_path_factory):
    root = tmp_path_factory.mktemp("attention")
    tok = train_bpe(["Mia saw a red ball. Then Mia took the ball home."] * 20, vocab_size=280)
    save(tok, root / "data" / "tokens")
    models = {
        "tiny": {"family": "transformer", "preset": "gptoss", "d_model": 16, "n_layer": 2, "n_head": 2, "d_ff": 32},
        "rnn": {"family": "lstm", "d_embed": 8, "hidden": 8, "n_layer": 1},
    }
    for name, spec in models.items():
        torch.manual_seed(0)
        model = sharpened(build_model(spec, vocab_size=tok.vocab_size, block_size=24, pad_id=tok.eot_id))
        payload = {"family": model.family, "config": dataclasses.asdict(model.config), "tokenizer": tok.identity,
                   "model": model.state_dict()}
        save_checkpoint(root / "models" / f"{name}.ckpt", payload)
    return root, tok


def run_attention(capsys, *args: str) -> tuple[int, str, str]:
    try:
        cli.main(["attention", *args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_attention_prints_each_tokens_most_attended_earlier_token(attention_project, capsys, monkeypatch):
    root, tok = attention_project
    monkeypatch.chdir(root)
    prompt = "Mia saw a red ball. Then Mia"
    code, out, err = run_attention(capsys, "--model", "tiny", "--prompt", prompt, "--layer", "1", "--head", "0")
    assert code == 0, err
    lines = out.splitlines()
    ids = [tok.eot_id, *tok.encode(prompt)]
    assert lines[0] == "layer 1, head 0" and lines[1].split() == ["pos", "token", "looks", "at", "token", "weight"]
    assert len(lines) == 2 + len(ids)
    model = load_model(root / "models" / "tiny.ckpt", tok)
    for position, (line, (attended, weight)) in enumerate(zip(lines[2:], top_attended(model, ids, 1, 0))):
        token, seen = repr(tok.decode([ids[position]])), repr(tok.decode([ids[attended]]))
        assert line.split() == [str(position), *token.split(), str(attended), *seen.split(), f"{weight:.3f}"]

    code, out, _ = run_attention(capsys, "--model", "tiny", "--prompt", prompt, "--generate", "3")
    period = (24 - 1) // 2  # the most that fits the context with the start token (below cli.ATTENTION_PERIOD)
    scores = head_scores(model, tok.vocab_size, period, cli.ATTENTION_BATCH, seed=0, exclude_ids=[tok.eot_id], start_id=tok.eot_id)
    layer, head, best = strongest_head(scores["induction"])
    assert code == 0
    assert out.splitlines()[0] == (f"layer {layer}, head {head}: the strongest induction head "
                                   f"(score {best:.3f} on random tokens repeated twice)")
    assert len(out.splitlines()) == 2 + len(ids) + 3

    # Once interpret@tiny has run, its strongest name-copying head is the default.
    write_json(root / "metrics" / "interpret" / "tiny.json", {"final": {"strongest_name_copy_head": {"layer": 1, "head": 0, "score": 0.5}}})
    code, out, _ = run_attention(capsys, "--model", "tiny", "--prompt", prompt)
    assert code == 0 and out.splitlines()[0] == ("layer 1, head 0: the strongest name-copying head in "
                                                 "metrics/interpret/tiny.json (score 0.500 on the validation stories)")


@pytest.mark.parametrize("args, message", [
    (["--model", "rnn", "--prompt", "Mia"], "error: model rnn is a lstm model; only transformers have attention heads to inspect"),
    (["--model", "tiny", "--prompt", "Mia", "--layer", "1"], "error: --layer and --head go together"),
    (["--model", "tiny", "--prompt", "Mia", "--layer", "0", "--head", "2"], "error: head 2 is not allowed; the model's heads are 0..1"),
    (["--model", "tiny", "--prompt", "Mia", "--generate", "-1"], "error: --generate -1 is not allowed"),
    (["--model", "tiny", "--prompt", "Mia saw a red ball. " * 6], "tokens (with the leading end-of-text); the model reads at most 24"),
])
def test_attention_refuses_bad_requests_in_one_line(attention_project, capsys, monkeypatch, args, message):
    monkeypatch.chdir(attention_project[0])
    code, out, err = run_attention(capsys, *args)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- figures


def test_figures_are_written_and_deterministic(tmp_path):
    scores = [[0.1, 0.95, 0.3], [0.45, 0.0, 0.2]]
    rows = [{"model": model, "tokens": t * 500_000, "val_loss": 1.0 / (1 + t), "recurring_name_nats_per_token": 3.0 - t / 3,
             "max_induction_score": min(1.0, 0.1 * t + (0.3 if model == "b" else 0.0))} for model in "ab" for t in range(8)]
    rows[0]["recurring_name_nats_per_token"] = None  # unknown values are skipped
    tokens = ["<|endoftext|>", "Mia", " saw", " a", " ball", ".\n", "Then", " Mia", " took", " it"]
    attn = np.tril(np.ones((10, 10))) / np.arange(1, 11)[:, None]
    attn[7] = 0.0
    attn[7, 2] = 1.0
    for run in ("first", "second"):
        head_heatmap([("copy", scores), ("previous", scores[::-1])], tmp_path / f"heat_{run}.png", title="tiny")
        phase_change_plot(rows, tmp_path / f"phase_{run}.png")
        attention_picture(tokens, [7, 9], attn[[7, 9]], tmp_path / f"picture_{run}.png", title="one story")
    for name in ("heat", "phase", "picture"):
        first = (tmp_path / f"{name}_first.png").read_bytes()
        assert first.startswith(b"\x89PNG") and first == (tmp_path / f"{name}_second.png").read_bytes()
    with pytest.raises(PicoError, match="must be 1 x 10"):
        attention_picture(tokens, [7], attn[7:8, :9], tmp_path / "bad.png")
    with pytest.raises(PicoError, match=r"query positions \[10\] are not allowed"):
        attention_picture(tokens, [10], attn[9:10], tmp_path / "bad.png")
    with pytest.raises(PicoError, match="lack"):
        phase_change_plot([{"tokens": 1}], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_one_pass_gives_the_loss_and_the_story_scores_of_the_two_separate_passes():
    """snapshot_row's single pass over the stories against position_nll and story_attention_scores alone."""
    model = sharpened(build_model(COPY_SPEC, vocab_size=30, block_size=16, pad_id=0))
    rng = random.Random(5)
    stories = [[rng.randrange(29) for _ in range(n)] for n in (5, 9, 1, 16, 20)]  # 20: past the context
    classes = [[rng.choice([OTHER, NAME_REPEAT]) for _ in story] for story in stories]
    heads = StoryAttention(model, stories, classes, 29)
    nll = position_nll(model, stories, start_id=29, batch_size=2, attention=heads.add)
    np.testing.assert_allclose(nll, position_nll(model, stories, start_id=29, batch_size=2), rtol=1e-5, atol=1e-5)
    separate = story_attention_scores(model, stories, classes, 29, batch_size=2)
    for key, rows in heads.scores().items():
        np.testing.assert_allclose(rows, separate[key], atol=2e-6)
