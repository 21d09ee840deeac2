"""Transformer presets at the design notes' reference sizes, as plain data.

Each preset fills every architectural field of `TransformerConfig` except `vocab_size`, which
comes from the tokenizer. A params.yaml entry picks one with `preset:` and may override any
field (the runs in this project shrink d_model/n_layer/d_ff to fit a CPU). `n_kv_head=None`
means "as many as n_head" (plain multi-head attention), so overriding n_head alone stays valid.

`max_seq_len` is the preset's position table (learned positions, GPT-2's 1024) or its design
context (RoPE: gpt-oss's 4096 before YaRN extension, Llama 3's 8192); a run's block_size must
not exceed it. Unless params set max_seq_len explicitly, the built model's table is cropped to
the run's block_size, as nanoGPT does, so no position row exists that training never saw.
"""

from __future__ import annotations

from types import MappingProxyType

TRANSFORMER_PRESETS = MappingProxyType(
    {
        # minGPT's "gpt-mini"-sized classic: LayerNorm, GELU, learned positions, tied output.
        "mingpt": MappingProxyType(
            dict(
                max_seq_len=1024, d_model=384, n_layer=6, n_head=6, n_kv_head=None, d_ff=1536,
                norm="layernorm", mlp="gelu", positions="learned", rope_base=10000.0,
                tie_weights=True, bias=True, dropout=0.0, norm_eps=1e-5,
            )
        ),
        # GPT-2 small's width (768, 12 heads) at 8 layers instead of 12 (the design's cap is 10).
        # GELU is the exact (erf) form, as in nanoGPT: GPT-2's tanh approximation (mlp: gelu_tanh)
        # differs by < 1e-3 and costs ~5% of a CPU training step (ATen's vectorised tanh).
        "gpt2": MappingProxyType(
            dict(
                max_seq_len=1024, d_model=768, n_layer=8, n_head=12, n_kv_head=None, d_ff=3072,
                norm="layernorm", mlp="gelu", positions="learned", rope_base=10000.0,
                tie_weights=True, bias=True, dropout=0.0, norm_eps=1e-5,
            )
        ),
        # gpt-oss's dense building blocks: RMSNorm, SwiGLU, RoPE, no biases, untied head.
        "gptoss": MappingProxyType(
            dict(
                max_seq_len=4096, d_model=512, n_layer=8, n_head=8, n_kv_head=None, d_ff=2048,
                norm="rmsnorm", mlp="swiglu", positions="rope", rope_base=10000.0,
                tie_weights=False, bias=False, dropout=0.0, norm_eps=1e-5,
            )
        ),
        # Llama 3 style: as gptoss plus grouped-query attention (4 K/V heads) and RoPE base 500k.
        "llama3lite": MappingProxyType(
            dict(
                max_seq_len=8192, d_model=1024, n_layer=8, n_head=16, n_kv_head=4, d_ff=8192,
                norm="rmsnorm", mlp="swiglu", positions="rope", rope_base=500000.0,
                tie_weights=False, bias=False, dropout=0.0, norm_eps=1e-5,
            )
        ),
    }
)


def reference_param_counts(vocab_size: int = 50257) -> dict[str, int]:
    """Parameters of each preset at its reference size, for the docs (docs/scaling.md).

    The models are built on the meta device: shapes without storage, so even the ~300M
    llama3lite costs no memory or time, and the count is the real architecture's, not a formula.
    """
    import torch

    from picollm.models.configs import TransformerConfig
    from picollm.models.transformer import Transformer

    counts = {}
    for name, fields in TRANSFORMER_PRESETS.items():
        with torch.device("meta"):
            model = Transformer(TransformerConfig(vocab_size=vocab_size, **fields))
        counts[name] = model.num_params()
    return counts
