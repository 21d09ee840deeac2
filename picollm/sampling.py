"""Next-token selection: greedy, temperature, top-k and true nucleus (top-p) sampling.

Order of operations: temperature scales the logits, top-k keeps the k largest, then top-p keeps
the nucleus of what is left, and the survivors are renormalised. Everything works on batched
logits (batch, vocab); draws are reproducible from a `torch.Generator`.

Nucleus definition: a token is kept iff its probability is > 0 and the total probability of the
tokens *strictly more probable* than it is < p. Equivalently: sort by probability, take the
smallest prefix whose mass reaches p (>= p), then add every token tied with the last one taken.

Ties: equally probable tokens are always kept or dropped together, in top-k as in top-p (top-k
keeps every token whose logit equals the k-th largest, so it may keep more than k). This is the
only rule under which the result does not depend on token ids, i.e. on the arbitrary order a
sort puts equal values in: two tokens with the same logit always get the same probability.
Consequences: the kept set is a union of whole tie groups; it reaches p, and dropping its least
probable tie group would fall short of p. p -> 0 keeps only the most probable tie group (greedy
when the maximum is unique); p = 1 keeps the full distribution. Greedy itself takes the lowest
id among tied maxima (torch's argmax).

-inf logits get probability 0 and are never sampled. The arithmetic is float64, so the returned
distribution sums to 1 up to ~1e-15 and the nucleus boundary is decided without float32 noise.
"""

from __future__ import annotations

import math

import torch

from picollm.errors import PicoError
from picollm.sampling_config import SamplingConfig

__all__ = ["SamplingConfig", "filtered_probs", "sample_next_token"]


def _check_logits(logits: torch.Tensor) -> None:
    if logits.dim() != 2:
        raise PicoError(f"logits must have shape (batch, vocab), got {tuple(logits.shape)}")
    # One reduction in the common all-finite case (it runs once per decoded token): a sum is
    # finite only if every term is (NaN and inf propagate; a finite overflow merely falls through
    # to the exact checks). Those run only to name what is wrong, or to allow some -inf.
    if torch.isfinite(logits.sum()):
        return
    if torch.isnan(logits).any():
        raise PicoError("logits contain NaN; the model produced an invalid distribution")
    if torch.isposinf(logits).any():
        raise PicoError("logits contain +inf; the model produced an invalid distribution")
    if torch.isneginf(logits).all(dim=-1).any():
        raise PicoError("a row of logits is entirely -inf; no token is possible")


def _nucleus_mask(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Which tokens the nucleus keeps (see the module docstring), as a bool tensor like `probs`."""
    sorted_probs, _ = torch.sort(probs, dim=-1, descending=True)
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    # The sorted prefix whose preceding mass is still short of p; the first entry always qualifies
    # (nothing precedes it), so the nucleus is never empty. Its smallest probability is the cutoff,
    # and comparing every token against the cutoff pulls in the ties sorted just after the prefix.
    in_prefix = mass_before < top_p
    cutoff = sorted_probs.masked_fill(~in_prefix, math.inf).min(dim=-1, keepdim=True).values
    return (probs >= cutoff) & (probs > 0)


def filtered_probs(logits: torch.Tensor, config: SamplingConfig) -> torch.Tensor:
    """The renormalised float64 distribution (batch, vocab) that `sample_next_token` draws from."""
    _check_logits(logits)
    logits = logits.double()
    # Shifting by the row maximum first keeps a tiny temperature from overflowing to inf.
    logits = (logits - logits.max(dim=-1, keepdim=True).values) / config.temperature
    if config.top_k is not None and config.top_k < logits.size(-1):
        kth_largest = torch.topk(logits, config.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth_largest, -math.inf)
    probs = torch.softmax(logits, dim=-1)
    if config.top_p < 1.0:
        probs = probs * _nucleus_mask(probs, config.top_p)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def sample_next_token(
    logits: torch.Tensor, config: SamplingConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Pick one token per row of `logits` (batch, vocab); returns a LongTensor (batch,)."""
    if config.greedy:
        _check_logits(logits)
        return logits.argmax(dim=-1)
    probs = filtered_probs(logits, config)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)
