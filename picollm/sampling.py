"""Next-token selection: greedy, temperature, top-k and true nucleus (top-p) sampling.

Order of operations (the usual one): temperature scales the logits, top-k keeps the k largest,
top-p keeps the smallest prefix of the remaining tokens, sorted by probability, whose mass
reaches p. At least one token always survives. Everything works on batched logits (batch, vocab).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from picollm.errors import PicoError


@dataclass(frozen=True)
class SamplingConfig:
    """How to pick the next token. `greedy=True` ignores the other fields."""

    greedy: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature) and self.temperature > 0):
            raise PicoError(f"temperature={self.temperature!r} is not allowed; it must be a finite number > 0")
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 1):
            raise PicoError(f"top_k={self.top_k!r} is not allowed; it must be an integer >= 1 (or null for no limit)")
        if not (isinstance(self.top_p, (int, float)) and 0.0 < self.top_p <= 1.0):
            raise PicoError(f"top_p={self.top_p!r} is not allowed; it must lie in (0, 1]")

    @property
    def label(self) -> str:
        if self.greedy:
            return "greedy"
        parts = [f"p={self.top_p:g}"]
        if self.temperature != 1.0:
            parts.append(f"T={self.temperature:g}")
        if self.top_k is not None:
            parts.append(f"k={self.top_k}")
        return ",".join(parts)


def filtered_probs(logits: torch.Tensor, config: SamplingConfig) -> torch.Tensor:
    """The renormalised distribution (batch, vocab) that `sample_next_token` draws from."""
    if logits.dim() != 2:
        raise PicoError(f"logits must have shape (batch, vocab), got {tuple(logits.shape)}")
    if torch.isnan(logits).any():
        raise PicoError("logits contain NaN; the model produced an invalid distribution")
    logits = logits.float() / config.temperature
    if config.top_k is not None and config.top_k < logits.size(-1):
        kth_largest = torch.topk(logits, config.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if config.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        # Keep a token while the mass of the tokens ranked above it is still short of p;
        # the first token always has zero mass before it, so the nucleus is never empty.
        keep_sorted = mass_before < config.top_p
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        probs = probs * keep
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def sample_next_token(
    logits: torch.Tensor, config: SamplingConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Pick one token per row of `logits` (batch, vocab); returns a LongTensor (batch,)."""
    if config.greedy:
        if torch.isnan(logits).any():
            raise PicoError("logits contain NaN; the model produced an invalid distribution")
        return logits.argmax(dim=-1)
    probs = filtered_probs(logits, config)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)
