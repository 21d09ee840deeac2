"""Decoding: cached decoding equals the recompute reference, end of text, batches, streaming."""

from __future__ import annotations

import pytest
import torch

from picollm import generation
from picollm.errors import PicoError
from picollm.generation import generate, generate_batch
from picollm.models.registry import build_model
from picollm.sampling import SamplingConfig

from test_models import TINY_SPECS

VOCAB = 23
EOT = 0
CONTEXT = 8  # small, so that 20 new tokens cross max_context
GREEDY = SamplingConfig(greedy=True)
SAMPLED = SamplingConfig(temperature=1.5, top_p=0.95)

TINY = {"d_model": 16, "n_layer": 2, "d_ff": 32}
SPECS = {
    "transformer-learned": {"family": "transformer", "preset": "gpt2", **TINY, "n_head": 2},
    "transformer-rope-gqa": {"family": "transformer", "preset": "llama3lite", **TINY, "n_head": 4, "n_kv_head": 2},
    "kgram-onehot": {"family": "kgram", "variant": "onehot", "k": 3, "hidden": 16},
    "kgram-conv": {"family": "kgram", "variant": "conv", "k": 3, "d_embed": 8, "hidden": 16},
    "lstm": {"family": "lstm", "d_embed": 8, "hidden": 16, "n_layer": 2},
}


def tiny(name: str):
    torch.manual_seed(0)
    model = build_model(SPECS[name], vocab_size=VOCAB, block_size=CONTEXT, pad_id=EOT, key=f"models.{name}")
    # Random init at std 0.02 makes near-uniform logits; sharpen them so sampling has structure.
    with torch.no_grad():
        model.head.weight.mul_(20.0)
    return model


def run(model, prompt, sampling=GREEDY, use_cache=True, max_new_tokens=20, eot_id=None, seed=0) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return list(
        generate(
            model, prompt, max_new_tokens=max_new_tokens, sampling=sampling, eot_id=eot_id,
            generator=generator, use_cache=use_cache,
        )
    )


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("prompt", [[5], [5, 6, 7], list(range(1, 12))], ids=["1", "3", "longer-than-context"])
def test_cached_generation_equals_recompute_reference(name, prompt):
    model = tiny(name)
    reference = run(model, prompt, use_cache=False)
    assert len(reference) == 20  # no eot given: runs to max_new_tokens, crossing max_context
    assert run(model, prompt, use_cache=True) == reference
    # Sampling consumes the generator identically on both paths.
    assert run(model, prompt, SAMPLED, use_cache=True, seed=3) == run(model, prompt, SAMPLED, use_cache=False, seed=3)


@pytest.mark.parametrize("name", TINY_SPECS)
def test_cached_logits_equal_a_fresh_forward_over_the_window_out_to_three_contexts(name, monkeypatch):
    """Every family and variant, every step: the logits decoding feeds the sampler equal those of
    `forward` over the last max_context tokens, computed here from the finished sequence."""
    torch.manual_seed(0)
    model = build_model(TINY_SPECS[name], vocab_size=VOCAB, block_size=CONTEXT, pad_id=EOT, key=f"models.{name}")
    with torch.no_grad():
        model.head.weight.mul_(20.0)
    seen: list[torch.Tensor] = []

    def recording(logits, sampling, generator):
        seen.append(logits.clone())
        return real_sample(logits, sampling, generator)

    real_sample = generation.sample_next_token
    monkeypatch.setattr(generation, "sample_next_token", recording)
    prompt = [5, 6, 7]
    new = run(model, prompt, SAMPLED, max_new_tokens=3 * CONTEXT, seed=2)
    assert len(new) == len(seen) == 3 * CONTEXT
    sequence = torch.tensor([prompt + new])
    with torch.no_grad():
        for step, logits in enumerate(seen):
            end = len(prompt) + step
            window = sequence[:, max(0, end - CONTEXT) : end]
            torch.testing.assert_close(logits, model(window)[:, -1], rtol=1e-5, atol=1e-5, msg=f"step {step}")
    # The steps' logits differ by far more than the tolerance, so a stale state would show.
    steps = [(a - b).abs().max().item() for a, b in zip(seen, seen[1:])]
    assert sum(steps) / len(steps) > 0.1


def test_generation_stops_at_eot_without_yielding_it():
    model = tiny("transformer-learned")
    free_run = run(model, [3, 4], SAMPLED, seed=1)
    eot = free_run[4]
    first = free_run.index(eot)
    assert run(model, [3, 4], SAMPLED, eot_id=eot, seed=1) == free_run[:first]


def test_generate_streams_lazily_and_leaves_grad_mode_alone():
    model = tiny("lstm").train()
    stream = generate(model, [1, 2], max_new_tokens=5, sampling=GREEDY)
    token = next(stream)
    assert isinstance(token, int) and 0 <= token < VOCAB
    assert not torch.is_inference_mode_enabled()  # not leaked across the yield
    assert not model.training
    assert len(list(stream)) == 4


def test_empty_prompt_starts_from_eot_and_bad_inputs_raise():
    model = tiny("kgram-onehot")
    assert run(model, [], eot_id=EOT, max_new_tokens=4) != []
    with pytest.raises(PicoError, match="prompt is empty"):
        run(model, [])
    with pytest.raises(PicoError, match="prompt token id 99"):
        run(model, [99])
    with pytest.raises(PicoError, match="max_new_tokens"):
        run(model, [1], max_new_tokens=-1)
    assert run(model, [1], max_new_tokens=0) == []


@pytest.mark.parametrize("name", ["transformer-rope-gqa", "lstm"])
def test_generate_batch_rows_match_single_generation(name):
    model = tiny(name)
    prompt = [4, 5, 6]
    single = run(model, prompt)
    assert generate_batch(model, prompt, 3, max_new_tokens=20, sampling=GREEDY) == [single] * 3
    # One row with the same seed is the same draw as generate().
    seeded = torch.Generator().manual_seed(7)
    one = generate_batch(model, prompt, 1, max_new_tokens=20, sampling=SAMPLED, generator=seeded)
    assert one == [run(model, prompt, SAMPLED, seed=7)]


def test_generate_batch_stops_each_row_at_eot():
    model = tiny("transformer-learned")
    samples = generate_batch(
        model, [1], 6, max_new_tokens=20, sampling=SamplingConfig(temperature=2.0), eot_id=EOT,
        generator=torch.Generator().manual_seed(0),
    )
    assert len(samples) == 6 and all(EOT not in row and len(row) <= 20 for row in samples)
    assert any(len(row) < 20 for row in samples) and len({tuple(row) for row in samples}) > 1
    recomputed = generate_batch(model, [1], 6, max_new_tokens=20, sampling=SamplingConfig(temperature=2.0), eot_id=EOT,
                            generator=torch.Generator().manual_seed(0), use_cache=False)
    assert recomputed == samples
    with pytest.raises(PicoError, match="n=0"):
        generate_batch(model, [1], 0, max_new_tokens=3, sampling=GREEDY)
