"""The config dataclasses of the model families, and the checks they share.

Kept free of torch: validating params.yaml resolves every model's config (picollm/models/registry.py),
and the stages that never touch a tensor (prepare, tokenize, compare, the study aggregates,
plots, report) should not pay the ~1.2 s of importing torch for it. Each family's module
(kgram.py, lstm.py, transformer.py) builds its nn.Module from one of these.

Config checks raise `PicoError` naming the params path, e.g. `models.tiny.d_model=100 ...`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from picollm.errors import PicoError

# The design caps depth: deeper models do not fit the CPU budget the comparison is run under.
MAX_LAYERS = 10


# ----------------------------------------------------------------------------------------------
# Config checks shared by the families. Each raises one PicoError sentence naming `key.name`.


def require_positive_int(key: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PicoError(f"{key}.{name}={value!r} is not allowed; it must be a positive integer")


def require_non_negative_int(key: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PicoError(f"{key}.{name}={value!r} is not allowed; it must be an integer >= 0")


def require_layer_count(key: str, name: str, value: object) -> None:
    require_positive_int(key, name, value)
    if value > MAX_LAYERS:  # type: ignore[operator]
        raise PicoError(f"{key}.{name}={value!r} is not allowed; the design caps it at {MAX_LAYERS}")


def require_choice(key: str, name: str, value: object, allowed: Iterable[str]) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise PicoError(f"{key}.{name}={value!r} is not allowed; choose one of: {', '.join(allowed)}")


def require_bool(key: str, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise PicoError(f"{key}.{name}={value!r} is not allowed; it must be true or false")


def require_positive_float(key: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise PicoError(f"{key}.{name}={value!r} is not allowed; it must be a finite number > 0")


def require_dropout(key: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise PicoError(f"{key}.{name}={value!r} is not allowed; it must be a number in [0, 1)")


def require_token_id(key: str, name: str, value: object, vocab_size: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < vocab_size:
        raise PicoError(f"{key}.{name}={value!r} is not allowed; it must be a token id in [0, {vocab_size})")


# ---------------------------------------------------------------- k-gram MLP (kgram.py)
KGRAM_VARIANTS = ("onehot", "embed", "conv")


@dataclass
class KGramConfig:
    vocab_size: int = 50257
    max_seq_len: int = 256  # longest forward() input; no parameter depends on it
    pad_id: int = 0  # end-of-text id, left-pads windows that reach before the sequence start
    variant: str = "onehot"
    k: int = 3
    d_embed: int = 64  # embed/conv only
    hidden: int = 256
    n_hidden_layers: int = 2
    kernel_size: int = 2  # conv only

    def check(self, key: str) -> None:
        for name in ("vocab_size", "max_seq_len", "k", "d_embed", "hidden", "kernel_size"):
            require_positive_int(key, name, getattr(self, name))
        require_layer_count(key, "n_hidden_layers", self.n_hidden_layers)
        require_choice(key, "variant", self.variant, KGRAM_VARIANTS)
        require_token_id(key, "pad_id", self.pad_id, self.vocab_size)
        if self.variant == "conv" and self.kernel_size > self.k:
            raise PicoError(
                f"{key}.kernel_size={self.kernel_size} is not allowed; the convolution slides over the "
                f"k={self.k} window positions, so kernel_size must be <= k"
            )


# ---------------------------------------------------------------- LSTM (lstm.py)
@dataclass
class LSTMConfig:
    vocab_size: int = 50257
    max_seq_len: int = 256  # longest forward() input; no parameter depends on it
    d_embed: int = 128
    hidden: int = 256
    n_layer: int = 2
    dropout: float = 0.0  # on the embeddings, between LSTM layers and before the head
    proj_size: int = 0  # 0: the head reads the LSTM output; else a Linear(hidden -> proj_size) first

    def check(self, key: str) -> None:
        for name in ("vocab_size", "max_seq_len", "d_embed", "hidden"):
            require_positive_int(key, name, getattr(self, name))
        require_layer_count(key, "n_layer", self.n_layer)
        require_non_negative_int(key, "proj_size", self.proj_size)
        require_dropout(key, "dropout", self.dropout)


# ---------------------------------------------------------------- transformer (transformer.py)
NORMS = ("layernorm", "rmsnorm")
# gelu: exact (erf) GELU, as nanoGPT and torch's default; gelu_tanh: GPT-2's tanh approximation,
# which ATen computes ~3x slower on CPU (its vectorised tanh): ~5% of a whole training step.
MLPS = ("gelu", "gelu_tanh", "swiglu")
POSITIONS = ("learned", "rope")


@dataclass
class TransformerConfig:
    """Defaults describe the mingpt preset's architecture (see presets.py)."""

    vocab_size: int = 50257
    max_seq_len: int = 1024  # position table size (learned) / longest context (RoPE, KV cache)
    d_model: int = 384
    n_layer: int = 6
    n_head: int = 6
    n_kv_head: int | None = None  # key/value heads (GQA); None means n_head (plain attention)
    d_ff: int = 1536
    norm: str = "layernorm"
    mlp: str = "gelu"
    positions: str = "learned"
    rope_base: float = 10000.0
    tie_weights: bool = True
    bias: bool = True  # in Linear layers and LayerNorm
    dropout: float = 0.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    def check(self, key: str) -> None:
        for name in ("vocab_size", "max_seq_len", "d_model", "n_head", "n_kv_head", "d_ff"):
            require_positive_int(key, name, getattr(self, name))
        require_layer_count(key, "n_layer", self.n_layer)
        require_choice(key, "norm", self.norm, NORMS)
        require_choice(key, "mlp", self.mlp, MLPS)
        require_choice(key, "positions", self.positions, POSITIONS)
        require_positive_float(key, "rope_base", self.rope_base)
        require_positive_float(key, "norm_eps", self.norm_eps)
        require_bool(key, "tie_weights", self.tie_weights)
        require_bool(key, "bias", self.bias)
        require_dropout(key, "dropout", self.dropout)
        if self.d_model % self.n_head:
            raise PicoError(
                f"{key}.d_model={self.d_model} is not allowed with n_head={self.n_head}; "
                f"d_model must be a multiple of n_head"
            )
        if self.n_head % self.n_kv_head:
            raise PicoError(
                f"{key}.n_kv_head={self.n_kv_head} is not allowed with n_head={self.n_head}; "
                f"n_kv_head must divide n_head"
            )
        if self.positions == "rope" and self.head_dim % 2:
            raise PicoError(
                f"{key}.d_model={self.d_model} is not allowed with n_head={self.n_head} and RoPE; "
                f"the head size d_model/n_head must be even"
            )
