"""A nanoGPT-style decoder-only transformer; every preset is this one model with different parts.

    token embedding (+ learned positions)
    n_layer x [ x + attn(norm(x));  x + mlp(norm(x)) ]      pre-norm residual blocks
    final norm -> head (optionally tied to the token embedding)

Choices a config makes: LayerNorm or RMSNorm, GELU (exact, or GPT-2's tanh approximation
`gelu_tanh`) or SwiGLU MLP, learned positions or RoPE,
grouped-query attention (n_kv_head < n_head), biases, weight tying. Attention is
`F.scaled_dot_product_attention` on a fused QKV projection; GQA is handled by SDPA's
`enable_gqa` (no copies of the K/V heads). One exception, chosen by measurement
(docs/performance.md): on a CPU under bf16 autocast, up to WRITTEN_OUT_MAX_CONTEXT positions,
attention is written out (`CausalSelfAttention.explicit`), because oneDNN's bf16 matmuls run at
the CPU's peak while the fused CPU kernel does not; float32 and CUDA always take SDPA.
Initialisation follows GPT-2: N(0, 0.02) for weights, the residual output projections scaled by
1/sqrt(2 * n_layer) so the residual stream's variance does not grow with depth.

Incremental decoding uses a KV cache preallocated per layer as (B, n_kv_head, max_seq_len,
head_dim) on first use (in the dtype the keys come in, so it also works under autocast);
`step` writes the new keys/values in place and attends over the filled prefix. A step of a few
tokens on a CPU cuts each weight into one slab per thread where that gives the same bits
(`row_split.py`): such a step is bound by streaming the weights from memory, and one BLAS call
streams on one core.

`forward_with_attention` is the one way to see the attention probabilities: it recomputes each
layer's attention written out (softmax(q k^T / sqrt(head_dim)) under the causal mask, RoPE and
GQA as above) and returns them with the logits; `forward` and `step` never build them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from picollm.models.base import LanguageModel
from picollm.models.configs import TransformerConfig
from picollm.models.row_split import decode_parts, linear

# Past this many positions the written-out attention's (T, T) work, half of it masked, costs more
# than the fused kernel saves (docs/performance.md).
WRITTEN_OUT_MAX_CONTEXT = 256


def written_out_attention_is_faster(x: torch.Tensor) -> bool:
    """True for CPU activations of at most WRITTEN_OUT_MAX_CONTEXT positions under bf16 autocast."""
    return (x.device.type == "cpu" and x.size(1) <= WRITTEN_OUT_MAX_CONTEXT and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16)


def make_norm(config: TransformerConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.d_model, eps=config.norm_eps)
    return nn.LayerNorm(config.d_model, eps=config.norm_eps, bias=config.bias)


# ----------------------------------------------------------------------------------------------
# Rotary position embeddings (RoPE), "rotate half" layout: dimension i pairs with i + head_dim/2.


def rope_tables(head_dim: int, n_positions: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of angle position * base^(-2i/head_dim), each (n_positions, head_dim)."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(n_positions, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each (x_i, x_{i+half}) pair of x (..., T, head_dim) by its position's angle."""
    half = x.size(-1) // 2
    # Under bf16 autocast q and k arrive in bf16: the tables follow them (as Hugging Face's Llama
    # and nanochat do), or every product would be promoted to float32. A no-op in float32.
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    # rotate_half(x) = cat(-x2, x1) = roll(x, half) * [-1.., +1..]: the signs go into sin (a small
    # table), so the rotation is one roll (a single copy) and one fused multiply-add; the
    # neg + cat + mul + add form is slower forward + backward on CPU (docs/performance.md).
    signed_sin = torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)
    return torch.addcmul(x * cos, x.roll(half, dims=-1), signed_sin)


# ----------------------------------------------------------------------------------------------


@dataclass
class KVCache:
    """Per-layer K and V buffers (B, n_kv_head, max_seq_len, head_dim) and how much is filled.

    `step` writes into the shared buffers and returns a new KVCache with a longer `length`;
    continue from the returned cache (an older one stays valid only until it is stepped again)."""

    batch_size: int
    capacity: int
    keys: list[torch.Tensor | None]
    values: list[torch.Tensor | None]
    length: int = 0

    def update(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor):
        """Store k, v (B, n_kv_head, T, hd) at positions start..; return all keys/values so far."""
        if self.keys[layer] is None:
            shape = (k.size(0), k.size(1), self.capacity, k.size(3))
            # Slots past `length` are never read, so the buffers need no initialisation.
            self.keys[layer], self.values[layer] = k.new_empty(shape), v.new_empty(shape)
        keys, values = self.keys[layer], self.values[layer]
        end = start + k.size(2)
        keys[:, :, start:end] = k
        values[:, :, start:end] = v
        return keys[:, :, :end], values[:, :, :end]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        # One matmul for q, k and v: [n_head | n_kv_head | n_kv_head] heads, each head contiguous.
        self.qkv = nn.Linear(config.d_model, (self.n_head + 2 * self.n_kv_head) * self.head_dim, bias=config.bias)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def project(self, x: torch.Tensor, rope=None, parts: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q (B, n_head, T, hd), k and v (B, n_kv_head, T, hd), RoPE applied when given."""
        B, T, _ = x.shape
        q_size, kv_size = self.n_head * self.head_dim, self.n_kv_head * self.head_dim
        q, k, v = linear(self.qkv, x, parts).split([q_size, kv_size, kv_size], dim=-1)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        return q, k, v

    def forward(self, x, rope=None, start: int = 0, cache: KVCache | None = None, layer: int = 0,
                parts: int = 1) -> torch.Tensor:
        """x (B, T, d) at absolute positions start..start+T-1, attending to the cached ones too;
        `parts` > 1 splits a few-token step's matmuls over the threads (picollm/models/row_split.py)."""
        if cache is None and start == 0 and (self.dropout == 0 or not self.training) and written_out_attention_is_faster(x):
            return self.explicit(x, rope)[0]
        B, T, d = x.shape
        q, k, v = self.project(x, rope, parts)
        mask, is_causal = None, T > 1
        if cache is not None:
            k, v = cache.update(layer, start, k, v)
            if start > 0:
                # SDPA's is_causal aligns the mask top-left, which is wrong once queries start at
                # `start`; a single new token may see everything, several need an offset mask.
                is_causal = False
                if T > 1:
                    key_pos = torch.arange(start + T, device=x.device)
                    query_pos = torch.arange(start, start + T, device=x.device)
                    mask = key_pos[None, :] <= query_pos[:, None]
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
            enable_gqa=self.n_kv_head != self.n_head,
        )
        y = linear(self.proj, y.transpose(1, 2).reshape(B, T, d), parts)
        return self.resid_dropout(y) if self.training else y  # identity in eval: skip the call

    def explicit(self, x: torch.Tensor, rope=None) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward` from position 0 without a cache, written out: softmax(q k^T / sqrt(hd)) under
        the causal mask, times v. Returns the output and the probabilities (B, n_head, T, T).

        Used to read the attention, and by `forward` where it is faster (see the module
        docstring); never with attention dropout, which it does not apply, and it keeps a (T, T)
        matrix per head where SDPA keeps none. Query head h reads K/V head h // (n_head / n_kv_head),
        as SDPA's `enable_gqa` does."""
        B, T, d = x.shape
        q, k, v = self.project(x, rope)
        group = self.n_head // self.n_kv_head
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        # Scaled on q (T x hd per head), masked in place: the (T, T) scores are written once.
        scores = (q * (1.0 / math.sqrt(self.head_dim))) @ k.transpose(-2, -1)
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        probs = scores.masked_fill_(future, float("-inf")).softmax(dim=-1)
        y = (probs @ v).transpose(1, 2).reshape(B, T, d)
        return self.resid_dropout(self.proj(y)), probs


class MLP(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.swiglu = config.mlp == "swiglu"
        self.gelu_approximate = "tanh" if config.mlp == "gelu_tanh" else "none"
        # SwiGLU's gate and up projections are fused into one matmul of width 2*d_ff.
        width = 2 * config.d_ff if self.swiglu else config.d_ff
        self.fc = nn.Linear(config.d_model, width, bias=config.bias)
        self.proj = nn.Linear(config.d_ff, config.d_model, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, parts: int = 1) -> torch.Tensor:
        h = linear(self.fc, x, parts)
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = F.gelu(h, approximate=self.gelu_approximate)
        h = linear(self.proj, h, parts)
        return self.dropout(h) if self.training else h  # identity in eval: skip the call


class Block(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.norm1 = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.norm2 = make_norm(config)
        self.mlp = MLP(config)

    def forward(self, x, rope=None, start: int = 0, cache: KVCache | None = None, layer: int = 0,
                maps: list[torch.Tensor] | None = None, parts: int = 1) -> torch.Tensor:
        """With `maps` (a list), attention is computed explicitly and its probabilities appended."""
        if maps is None:
            x = x + self.attn(self.norm1(x), rope, start, cache, layer, parts)
        else:
            attended, probs = self.attn.explicit(self.norm1(x), rope)
            maps.append(probs)
            x = x + attended
        return x + self.mlp(self.norm2(x), parts)


class Transformer(LanguageModel):
    family: ClassVar[str] = "transformer"

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.max_seq_len, config.d_model) if config.positions == "learned" else None
        if config.positions == "rope":
            cos, sin = rope_tables(config.head_dim, config.max_seq_len, config.rope_base)
            # Derived from the config, so kept out of state_dict (persistent=False).
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm_f = make_norm(config)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_weights:
            self.head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        residual_std = 0.02 / math.sqrt(2 * config.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, std=residual_std)
            nn.init.normal_(block.mlp.proj.weight, std=residual_std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def _run(self, idx: torch.Tensor, start: int, cache: KVCache | None, maps: list | None = None,
             parts: int = 1) -> torch.Tensor:
        T = idx.size(1)
        x = self.tok_emb(idx)
        rope = None
        if self.pos_emb is not None:
            # A slice of the table is the lookup of start..start+T-1 (the same values), without
            # building an index tensor at every decoded token.
            x = x + self.pos_emb.weight[start : start + T]
        else:
            rope = (self.rope_cos[start : start + T], self.rope_sin[start : start + T])
        if self.training:  # dropout is the identity in eval; skipping the call saves decode time
            x = self.drop(x)
        for layer, block in enumerate(self.blocks):
            x = block(x, rope, start, cache, layer, maps, parts)
        return linear(self.head, self.norm_f(x), parts)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        self.check_input(idx)
        return self._run(idx, 0, None)

    def forward_with_attention(self, idx: torch.Tensor, per_layer: bool = False):
        """The logits of `forward` (equal up to float rounding, in eval mode) and every head's
        attention probabilities, (B, n_layer, n_head, T, T): row i is what query i attends to.
        With `per_layer`, the maps as a list of (B, n_head, T, T), one per layer, not copied into
        one tensor (for a reader that gathers a few entries of each).

        The logits are computed from these probabilities (attention written out instead of SDPA),
        so the maps are the ones the prediction really used. `forward` itself is untouched."""
        self.check_input(idx)
        maps: list[torch.Tensor] = []
        logits = self._run(idx, 0, None, maps)
        return logits, (maps if per_layer else torch.stack(maps, dim=1))

    def init_state(self, batch_size: int) -> KVCache:
        n_layer = self.config.n_layer
        return KVCache(batch_size, self.config.max_seq_len, [None] * n_layer, [None] * n_layer)

    def step(self, idx: torch.Tensor, state: KVCache) -> tuple[torch.Tensor, KVCache]:
        self.check_ids(idx)
        if idx.size(0) != state.batch_size:
            raise ValueError(f"the KV cache was made for batch size {state.batch_size}, got {idx.size(0)} rows")
        end = state.length + idx.size(1)
        if end > state.capacity:
            raise ValueError(f"the KV cache holds {state.capacity} tokens; {end} do not fit, re-prefill a new one")
        logits = self._run(idx, state.length, state, parts=decode_parts(idx))
        return logits, KVCache(state.batch_size, state.capacity, state.keys, state.values, end)

    def flops_per_token(self, context_len: int) -> float:
        # 6N over the matmul weights (QKV, projections, MLP, head) plus the attention scores and
        # weighted sum: 2 matmuls x 2 FLOPs x d_model x context per layer, x3 for backward (PaLM).
        c = self.config
        return 6.0 * self.matmul_weight_count() + 12.0 * c.n_layer * c.d_model * context_len
