"""LSTM language model: embedding -> stacked torch.nn.LSTM -> optional projection -> head.

Decoding carries the LSTM's (h, c) state; `forward` is `step` from the zero state, so the two
agree by construction. `max_seq_len` (the block size) only bounds the context, like the other
families, so that decoding crops at the same place as the recompute reference.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from picollm.models.base import LanguageModel
from picollm.models.configs import LSTMConfig


class LSTMLanguageModel(LanguageModel):
    family: ClassVar[str] = "lstm"

    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_embed)
        self.drop = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(
            config.d_embed,
            config.hidden,
            num_layers=config.n_layer,
            # torch only applies (and warns about) inter-layer dropout with 2+ layers.
            dropout=config.dropout if config.n_layer > 1 else 0.0,
            batch_first=True,
        )
        self.proj = nn.Linear(config.hidden, config.proj_size, bias=False) if config.proj_size else None
        self.head = nn.Linear(config.proj_size or config.hidden, config.vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        self.check_input(idx)
        return self.step(idx, self.init_state(idx.size(0)))[0]

    def init_state(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero (h, c), each (n_layer, batch, hidden): what nn.LSTM starts from by default."""
        weight = self.head.weight
        shape = (self.config.n_layer, batch_size, self.config.hidden)
        return (weight.new_zeros(shape), weight.new_zeros(shape))

    def step(self, idx: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        self.check_ids(idx)
        x = self.drop(self.embed(idx))
        device_type = x.device.type
        if torch.is_autocast_enabled(device_type):
            # Under CPU autocast the oneDNN LSTM kernel rejects float32 inputs; give it the
            # autocast dtype itself (the weights are cast by autocast as usual).
            dtype = torch.get_autocast_dtype(device_type)
            x, state = x.to(dtype), (state[0].to(dtype), state[1].to(dtype))
        out, new_state = self.lstm(x, state)
        if self.proj is not None:
            out = self.proj(out)
        return self.head(self.drop(out)), new_state

    def flops_per_token(self, context_len: int) -> float:
        # Per layer and token the LSTM multiplies its input by weight_ih (4H x in) and h by
        # weight_hh (4H x H): 2 FLOPs per weight forward, x3 with the backward pass.
        lstm_weights = sum(p.numel() for name, p in self.lstm.named_parameters() if name.startswith("weight_"))
        return 6.0 * (lstm_weights + self.matmul_weight_count())
