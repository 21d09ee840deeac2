"""k-gram MLP: the previous k tokens predict the next one.

At position t the model sees the window of input tokens t-k+1 .. t (the window ends at the
current input token) and outputs logits for token t+1. Positions with fewer than k tokens before
them are padded on the LEFT with `pad_id`, the end-of-text id: that is exactly the token that
precedes every document in the corpus, so a padded window looks like the start of a document.

Three ways to turn the window into a hidden vector, then the same MLP trunk
(`n_hidden_layers` blocks of width `hidden` with SiLU, the first one variant-specific) and a
Linear to the vocabulary:

* `onehot` - the k one-hot vectors flattened (k*V inputs) into a Linear layer. Multiplying a
  one-hot vector by a matrix selects a row, so the layer is computed in its lookup form: its
  weight is stored as a (k, V, hidden) table and the k selected rows are summed
  (`F.embedding_bag`). No B*T*k*V tensor ever exists. `onehot_first_layer_reference` computes
  the explicit one-hot product, in chunks of positions, to prove the two forms equal.
* `embed` - k learned embeddings (d_embed each) concatenated, then the MLP.
* `conv` - embeddings, a 1-D convolution (kernel `kernel_size`, d_embed channels, SiLU) sliding
  over the k positions, its k-kernel_size+1 outputs flattened, then projected into the MLP.

Everything is vectorised over (batch, time): the sequence is padded once and windows come from
`unfold`; embeddings and convolutions are computed once per position, then windowed.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from picollm.models.base import LanguageModel
from picollm.models.configs import KGramConfig


class KGramMLP(LanguageModel):
    family: ClassVar[str] = "kgram"

    def __init__(self, config: KGramConfig):
        super().__init__()
        self.config = config
        k, V, H = config.k, config.vocab_size, config.hidden
        if config.variant == "onehot":
            # The first Linear(k*V -> H) stored as a lookup table. Its init treats each of the k
            # rows it sums like an embedding, scaled so the sum has unit variance.
            self.onehot_table = nn.Parameter(torch.randn(k, V, H) / k**0.5)
            self.onehot_bias = nn.Parameter(torch.zeros(H))
        else:
            self.embed = nn.Embedding(V, config.d_embed)
            if config.variant == "conv":
                self.conv = nn.Conv1d(config.d_embed, config.d_embed, config.kernel_size)
                window_features = (k - config.kernel_size + 1) * config.d_embed
            else:
                window_features = k * config.d_embed
            self.first = nn.Linear(window_features, H)
        self.hidden_layers = nn.ModuleList(nn.Linear(H, H) for _ in range(config.n_hidden_layers - 1))
        self.head = nn.Linear(H, V)

    # -- the window -> first hidden layer part, one per variant ---------------------------------

    def _first_layer(self, padded: torch.Tensor) -> torch.Tensor:
        """Pre-activation of the first hidden layer, (B, T, H), from ids padded with k-1 tokens."""
        k = self.config.k
        B, T = padded.size(0), padded.size(1) - (k - 1)
        if self.config.variant == "onehot":
            windows = padded.unfold(1, k, 1)  # (B, T, k), a view
            # Row j of the window indexes block j of the flattened (k*V, H) table.
            offsets = torch.arange(k, device=padded.device) * self.config.vocab_size
            rows = (windows + offsets).reshape(B * T, k)
            table = self.onehot_table.view(k * self.config.vocab_size, self.config.hidden)
            summed = F.embedding_bag(rows, table, mode="sum")
            return (summed + self.onehot_bias).view(B, T, -1)
        emb = self.embed(padded)  # (B, T+k-1, E): each position embedded once
        if self.config.variant == "embed":
            # unfold -> (B, T, E, k); transpose so features are position-major, like a concat.
            windows = emb.unfold(1, k, 1).transpose(-1, -2)
            return self.first(windows.reshape(B, T, -1))
        # conv: convolve the whole padded sequence once, then gather each window's outputs.
        conv_out = F.silu(self.conv(emb.transpose(1, 2)))  # (B, E, T+k-kernel)
        n_outputs = k - self.config.kernel_size + 1  # conv outputs that fit inside one window
        windows = conv_out.unfold(2, n_outputs, 1).permute(0, 2, 3, 1)  # (B, T, n_outputs, E)
        return self.first(windows.reshape(B, T, -1))

    def _logits_from_padded(self, padded: torch.Tensor) -> torch.Tensor:
        h = F.silu(self._first_layer(padded))
        for layer in self.hidden_layers:
            h = F.silu(layer(h))
        return self.head(h)

    # -- the LanguageModel interface ------------------------------------------------------------

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        self.check_input(idx)
        padded = F.pad(idx, (self.config.k - 1, 0), value=self.config.pad_id)
        return self._logits_from_padded(padded)

    def init_state(self, batch_size: int) -> torch.Tensor:
        """The last k-1 tokens seen; before any input that is k-1 pads, as forward() pads."""
        device = self.head.weight.device
        return torch.full((batch_size, self.config.k - 1), self.config.pad_id, dtype=torch.long, device=device)

    def step(self, idx: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_ids(idx)
        padded = torch.cat([state, idx], dim=1)
        logits = self._logits_from_padded(padded)
        # The window is bounded, so decoding never needs to re-prefill (but may: it is cheap).
        return logits, padded[:, padded.size(1) - (self.config.k - 1) :]

    def flops_per_token(self, context_len: int) -> float:
        # The one-hot first layer is a lookup (no matmul) and is not a Linear, so it is excluded;
        # the conv runs once per position, so its weight counts like a Linear's.
        return 6.0 * self.matmul_weight_count()


def onehot_first_layer_reference(model: KGramMLP, idx: torch.Tensor, chunk_size: int = 64) -> torch.Tensor:
    """The one-hot variant's first layer (pre-activation, (B, T, H)) as an explicit product.

    Builds the flattened one-hot inputs (positions, k*V) for `chunk_size` positions at a time and
    multiplies them by the table viewed as a (k*V, H) matrix: the textbook form of the layer the
    model computes by lookup. For tests and documentation, not for training.
    """
    config = model.config
    if config.variant != "onehot":
        raise ValueError(f"the model is the {config.variant!r} variant, not 'onehot'")
    k, V, H = config.k, config.vocab_size, config.hidden
    B, T = idx.shape
    padded = F.pad(idx, (k - 1, 0), value=config.pad_id)
    windows = padded.unfold(1, k, 1).reshape(B * T, k)
    weight = model.onehot_table.reshape(k * V, H)
    chunks = []
    for start in range(0, B * T, chunk_size):
        chunk = windows[start : start + chunk_size]
        one_hot = F.one_hot(chunk, V).to(weight.dtype).reshape(chunk.size(0), k * V)
        chunks.append(one_hot @ weight + model.onehot_bias)
    return torch.cat(chunks).view(B, T, H)
