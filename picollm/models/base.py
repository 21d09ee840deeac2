"""The interface every pico-llm model implements (the config dataclasses live in configs.py).

A model maps token ids (B, T) to next-token logits (B, T, V): the logits at position t predict
token t+1 from tokens 0..t only (causal). Besides `forward` (training, evaluation, the
no-cache decoding reference) every model can decode incrementally:

    state = model.init_state(batch_size)          # nothing seen yet
    logits, state = model.step(prompt, state)     # prefill: several tokens at once
    logits, state = model.step(next_token, state) # then one (or more) at a time

and the logits of `step` equal those of `forward` on the whole sequence. What the state holds is
the family's business (a KV cache, the LSTM's (h, c), the k-gram's token window); callers treat
it as opaque and always continue from the state `step` returned.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn


class LanguageModel(nn.Module):
    """Base class of the k-gram MLP, the LSTM and the transformer."""

    family: ClassVar[str]
    config: Any  # the family's config dataclass; asdict(config) is what checkpoints store

    @property
    def max_context(self) -> int:
        """The longest input `forward` accepts (and the most tokens a decoding state holds)."""
        return self.config.max_seq_len

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, V)
        raise NotImplementedError

    def init_state(self, batch_size: int) -> object:
        raise NotImplementedError

    def step(self, idx: torch.Tensor, state: object) -> tuple[torch.Tensor, object]:
        raise NotImplementedError

    def num_params(self) -> int:
        """Trainable parameters; `parameters()` yields a tied weight once, so it is counted once."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def flops_per_token(self, context_len: int) -> float:
        raise NotImplementedError

    def matmul_weight_count(self) -> int:
        """Weights that multiply activations (Linear and Conv1d weights, incl. a tied head).

        Biases and norm gains are elementwise and lookups (embeddings, position tables) are
        gathers, so neither contributes matmul FLOPs. A tied weight is counted once, as the head
        (the lookup use of the same tensor is free)."""
        seen: set[int] = set()
        total = 0
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d)) and id(module.weight) not in seen:
                seen.add(id(module.weight))
                total += module.weight.numel()
        return total

    @staticmethod
    def check_ids(idx: torch.Tensor) -> None:
        """Reject malformed token ids; these are caller bugs, hence ValueError, not PicoError."""
        if idx.dim() != 2 or idx.dtype != torch.long:
            raise ValueError(f"expected token ids as a LongTensor (batch, time), got {idx.dtype} {tuple(idx.shape)}")

    def check_input(self, idx: torch.Tensor) -> None:
        """What forward() accepts: well-formed ids, at most max_context of them per row."""
        self.check_ids(idx)
        if idx.size(1) > self.max_context:
            raise ValueError(f"input of {idx.size(1)} tokens exceeds max_context={self.max_context}; crop it first")
