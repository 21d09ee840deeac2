"""Autoregressive decoding for any `LanguageModel`.

The next token is always predicted from the most recent `model.max_context` tokens of the
sequence (prompt + generated so far). `use_cache=False` is the reference: it runs `forward` on
that window at every step. `use_cache=True` keeps the model's decoding state (KV cache, LSTM
(h, c), k-gram window) and feeds only the new token; once the sequence outgrows max_context the
window slides, which no state can follow (positions and earlier layers' keys change), so each
such step re-prefills a fresh state from the window (the most recent max_context-1 tokens plus
the newest one). Both paths therefore compute the same logits, and consume the random generator
identically, whatever the length.

End of text: when the model samples `eot_id`, decoding stops and the eot token is NOT yielded
(it marks the end, it is not part of the story). An empty prompt starts from `eot_id`, which is
what precedes every document.

Decoding puts the model in eval mode and leaves it there (restoring train mode at an unknown
time, when a half-consumed generator is garbage-collected, would be worse); inference mode is
entered only around each step's computation, never across a `yield`, so the caller's code
between tokens runs in its own grad mode.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from picollm.errors import PicoError
from picollm.models.base import LanguageModel
from picollm.sampling import SamplingConfig, sample_next_token


def _start_tokens(model: LanguageModel, prompt_ids: list[int], eot_id: int | None, max_new_tokens: int) -> list[int]:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise PicoError(f"max_new_tokens={max_new_tokens!r} is not allowed; it must be an integer >= 0")
    tokens = list(prompt_ids)
    if not tokens:
        if eot_id is None:
            raise PicoError("the prompt is empty and no eot_id was given to start from; give at least one token")
        tokens = [eot_id]
    vocab_size = model.config.vocab_size
    for token in tokens:
        if not 0 <= token < vocab_size:
            raise PicoError(f"prompt token id {token} is not allowed; ids must lie in [0, {vocab_size})")
    return tokens


def _decode(
    model: LanguageModel,
    start_tokens: list[int],
    batch_size: int,
    max_new_tokens: int,
    sampling: SamplingConfig,
    generator: torch.Generator | None,
    use_cache: bool,
) -> Iterator[torch.Tensor]:
    """Yield the next token of every row, (batch_size,), for max_new_tokens steps."""
    if any(module.training for module in model.modules()):  # reading is cheaper than eval()'s setting
        model.eval()
    max_context = model.max_context
    device = next(model.parameters()).device
    with torch.inference_mode():
        # Room for the whole sequence up front: appending is then a write, not a concatenation.
        tokens = torch.empty(batch_size, len(start_tokens) + max_new_tokens, dtype=torch.long, device=device)
        tokens[:, : len(start_tokens)] = torch.tensor(start_tokens, device=device)
    length = len(start_tokens)
    state, state_start, state_end = None, 0, 0  # the state has seen tokens[:, state_start:state_end]

    for _ in range(max_new_tokens):
        with torch.inference_mode():
            window_start = max(0, length - max_context)
            if not use_cache:
                logits = model(tokens[:, window_start:length])[:, -1]
            else:
                if state is None or state_start != window_start:  # first step, or the window slid
                    state, state_start, state_end = model.init_state(batch_size), window_start, window_start
                step_logits, state = model.step(tokens[:, state_end:length], state)
                state_end = length
                logits = step_logits[:, -1]
            next_tokens = sample_next_token(logits.float(), sampling, generator)
            tokens[:, length] = next_tokens
        length += 1
        yield next_tokens


def generate(
    model: LanguageModel,
    prompt_ids: list[int],
    *,
    max_new_tokens: int,
    sampling: SamplingConfig,
    eot_id: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> Iterator[int]:
    """Yield up to max_new_tokens new token ids one at a time; stop (without yielding) at eot_id."""
    start_tokens = _start_tokens(model, prompt_ids, eot_id, max_new_tokens)
    for next_tokens in _decode(model, start_tokens, 1, max_new_tokens, sampling, generator, use_cache):
        token = int(next_tokens[0])
        if token == eot_id:
            return
        yield token


def generate_batch(
    model: LanguageModel,
    prompt_ids: list[int],
    n: int,
    *,
    max_new_tokens: int,
    sampling: SamplingConfig,
    eot_id: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> list[list[int]]:
    """n samples continuing the same prompt, decoded together as one batch.

    Each row ends before its first eot_id (not included) or after max_new_tokens; decoding stops
    once every row has ended. With n=1 and the same generator this equals `generate`.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise PicoError(f"n={n!r} is not allowed; the number of samples must be an integer >= 1")
    start_tokens = _start_tokens(model, prompt_ids, eot_id, max_new_tokens)
    samples: list[list[int]] = [[] for _ in range(n)]
    finished = [False] * n
    for next_tokens in _decode(model, start_tokens, n, max_new_tokens, sampling, generator, use_cache):
        # Finished rows keep being decoded (the batch stays rectangular) but their tokens are dropped.
        for row, token in enumerate(next_tokens.tolist()):
            if finished[row]:
                continue
            if token == eot_id:
                finished[row] = True
            else:
                samples[row].append(token)
        if all(finished):
            break
    return samples
