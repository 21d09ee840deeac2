"""The speedrun's arithmetic (tokens to a target, the ratio or its bound) and its side-by-side speeds."""

import math

import pytest

from picollm.config import TrainParams
from picollm.data.tokens import TokenStream
from picollm.report import speedrun_seconds
from picollm.speedrun import speedrun_summary, tokens_to_reach, training_rates

import helpers as H


def curve(*bpbs: float, step_tokens: int = 100) -> list[dict]:
    return [{"step": i + 1, "tokens": (i + 1) * step_tokens, "val_bpb": bpb} for i, bpb in enumerate(bpbs)]


def test_tokens_to_reach_interpolates_between_the_snapshots_that_straddle_the_target():
    rows = curve(1.0, 0.6, 0.4)
    assert tokens_to_reach(rows, 0.5) == pytest.approx(250.0)  # halfway from 0.6 (200) to 0.4 (300)
    assert tokens_to_reach(rows, 1.2) == 100.0  # already there at the first snapshot
    assert tokens_to_reach(rows, 0.3) is None


def test_summary_gives_an_exact_ratio_a_bound_or_none():
    floor = 0.1
    exact = speedrun_summary(curve(0.5, 0.2), curve(0.6, 0.4, 0.25, 0.2), floor, 2.5)  # target 0.25
    assert (exact["token_ratio"], exact["token_ratio_is"]) == (0.6667, "exact")  # 200 tokens against 300
    bound = speedrun_summary(curve(0.5, 0.2), curve(0.6, 0.4), floor, 2.5)
    assert (bound["token_ratio"], bound["token_ratio_is"]) == (1.0, "at most")  # 200 of nanoGPT's whole 200
    neither = speedrun_summary(curve(0.5, 0.4), curve(0.6, 0.4), floor, 2.5)
    assert (neither["token_ratio"], neither["token_ratio_is"]) == (None, "not reached")
    # Matching nanoGPT's final 0.4: the recipe was at 0.5 after 100 tokens and 0.4 after 200.
    assert neither["match_nanogpt_final"]["recipe_tokens"] == 200


def test_training_rates_time_every_recipe_on_the_same_model(token_cache):
    tok, token_dir = token_cache
    stream = TokenStream.open(token_dir / "train.bin", tok.vocab_size)
    recipe = TrainParams(**{**H.TINY_TRAIN, "optimizer": "muon", "crop": "story"})
    nanogpt = recipe.merged({"optimizer": "adamw", "crop": "random"})
    rates = training_rates({"recipe": recipe, "nanogpt": nanogpt}, H.TINY_TRANSFORMER, stream, tok.vocab_size, tok.eot_id,
                           seed=0, steps=2)
    assert set(rates) == {"recipe", "nanogpt"}
    assert all(math.isfinite(rate) and rate > 0 for rate in rates.values()), rates


def test_the_report_states_both_recipes_in_seconds_at_their_own_speeds():
    timings = {"recipe": {"tokens_per_second": 50.0}, "nanogpt": {"tokens_per_second": 100.0}}
    reached = speedrun_summary(curve(0.5, 0.2), curve(0.6, 0.4, 0.25, 0.2), 0.1, 2.5)  # 200 and 300 tokens
    text = speedrun_seconds(reached, timings)
    assert "reached the target after 4 s, nanoGPT's after 3 s" in text, text
    assert "matched nanoGPT's final loss after 4 s against 4 s" in text, text  # 0.2 at 200 tokens; 400 at 100/s
    bound = speedrun_summary(curve(0.5, 0.2), curve(0.6, 0.4), 0.1, 2.5)
    assert "nanoGPT's not within its 2 s" in speedrun_seconds(bound, timings)
