"""Models: shapes, causality, incremental decoding, building blocks, parameter counts, configs."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from picollm.errors import PicoError
from picollm.models.kgram import onehot_first_layer_reference
from picollm.models.presets import TRANSFORMER_PRESETS, reference_param_counts
from picollm.models.registry import build_model, model_config, model_from_config
from picollm.models.transformer import (
    WRITTEN_OUT_MAX_CONTEXT,
    CausalSelfAttention,
    TransformerConfig,
    apply_rope,
    make_norm,
    rope_tables,
)

VOCAB = 29
PAD = VOCAB - 1  # not 0, so forgetting to pad with pad_id (zeros) would show
BLOCK = 12
TINY_TRANSFORMER = {"d_model": 16, "n_layer": 2, "n_head": 4, "d_ff": 24}

TINY_SPECS = {
    **{
        f"transformer-{name}": {"family": "transformer", "preset": name, **TINY_TRANSFORMER}
        for name in TRANSFORMER_PRESETS
    },
    "transformer-llama3lite-gqa": {"family": "transformer", "preset": "llama3lite", **TINY_TRANSFORMER, "n_kv_head": 2},
    "kgram-onehot": {"family": "kgram", "variant": "onehot", "k": 3, "hidden": 16, "n_hidden_layers": 2},
    "kgram-embed": {"family": "kgram", "variant": "embed", "k": 3, "d_embed": 8, "hidden": 16, "n_hidden_layers": 2},
    "kgram-conv": {"family": "kgram", "variant": "conv", "k": 4, "d_embed": 8, "hidden": 16, "kernel_size": 2},
    "kgram-k1": {"family": "kgram", "variant": "embed", "k": 1, "d_embed": 8, "hidden": 16},
    "lstm": {"family": "lstm", "d_embed": 8, "hidden": 16, "n_layer": 2},
    "lstm-proj": {"family": "lstm", "d_embed": 8, "hidden": 16, "n_layer": 1, "proj_size": 8},
}


def tiny(name: str, block_size: int = BLOCK):
    torch.manual_seed(0)
    spec = TINY_SPECS[name]
    return build_model(spec, vocab_size=VOCAB, block_size=block_size, pad_id=PAD, key=f"models.{name}").eval()


def random_ids(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", TINY_SPECS)
def test_output_shape_and_family(name):
    model = tiny(name)
    assert model.family == TINY_SPECS[name]["family"]
    assert model.max_context == BLOCK
    for length in (1, BLOCK):
        logits = model(random_ids(2, length))
        assert logits.shape == (2, length, VOCAB) and logits.dtype == torch.float32
    with pytest.raises(ValueError):
        model(random_ids(1, BLOCK + 1))


@pytest.mark.parametrize("name", TINY_SPECS)
def test_changing_a_later_token_never_changes_earlier_logits(name):
    model = tiny(name)
    ids = random_ids(2, BLOCK)
    with torch.no_grad():
        reference = model(ids)
        for t in (0, 4, BLOCK - 2):
            changed = ids.clone()
            changed[:, t + 1] = (changed[:, t + 1] + 1) % VOCAB
            logits = model(changed)
            torch.testing.assert_close(logits[:, : t + 1], reference[:, : t + 1], rtol=0, atol=1e-6)
            # ...while the changed position itself does react, so the check can fail.
            assert not torch.allclose(logits[:, t + 1], reference[:, t + 1])


@pytest.mark.parametrize("name", TINY_SPECS)
def test_step_decoding_equals_forward(name):
    model = tiny(name)
    ids = random_ids(2, BLOCK)
    with torch.no_grad():
        full = model(ids)
        state = model.init_state(2)
        pieces, start = [], 0
        for size in (5, 1, 1, 3, 2):  # multi-token prefill, single steps, a multi-token chunk
            logits, state = model.step(ids[:, start : start + size], state)
            pieces.append(logits)
            start += size
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["lstm", "transformer-llama3lite-gqa", "kgram-conv"])
def test_bfloat16_autocast_trains_and_decodes(name):
    model = tiny(name)
    with torch.no_grad():
        model.head.weight.mul_(20.0)  # init logits spread ~0.08: any tolerance would pass; now ~1
    ids = random_ids(2, BLOCK)
    with torch.no_grad():
        reference = model(ids)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(ids).float().sum().backward()
        with torch.no_grad():
            full = model(ids).float()
            first, state = model.step(ids[:, :5], model.init_state(2))
            rest, _ = model.step(ids[:, 5:], state)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    # Decoding in bf16 computes what the bf16 forward computes, to bf16's resolution (a unit in the
    # last place is 0.0156 at these magnitudes; emulated bf16 kernels round products of other shapes
    # differently; a decoding bug moves logits by ~1)...
    torch.testing.assert_close(torch.cat([first, rest], 1).float(), full, rtol=0.02, atol=0.02)
    # ...and bf16 stays within a few percent of the spread of the fp32 logits (~1 here).
    spread = reference.std().item()
    assert spread > 0.5 and (full - reference).abs().max().item() < 0.05 * spread


@pytest.mark.parametrize("dtype, length, dropout, written_out", [
    (torch.bfloat16, WRITTEN_OUT_MAX_CONTEXT, 0.0, True),  # where it measured faster
    (torch.bfloat16, WRITTEN_OUT_MAX_CONTEXT + 1, 0.0, False),  # past the crossover: the fused kernel
    (torch.float32, 8, 0.0, False),  # fp32: SDPA is faster, and keeps the default run's bytes
    (torch.bfloat16, 8, 0.1, False),  # attention dropout in training: only SDPA applies it
])
def test_cpu_bf16_attention_is_written_out_only_where_it_pays(monkeypatch, dtype, length, dropout, written_out):
    model = build_model({**TINY_SPECS["transformer-gpt2"], "dropout": dropout}, vocab_size=VOCAB, block_size=length,
                        pad_id=PAD, key="models.t").train()
    calls = []
    real = CausalSelfAttention.explicit
    monkeypatch.setattr(CausalSelfAttention, "explicit", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    ids = random_ids(2, length)
    with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        written = model(ids).float()
    assert len(calls) == (model.config.n_layer if written_out else 0)
    if written_out:  # the same function as SDPA's, to bf16's resolution
        monkeypatch.setattr("picollm.models.transformer.WRITTEN_OUT_MAX_CONTEXT", 0)
        with torch.autocast("cpu", dtype=dtype):
            fused = model(ids).float()
        assert len(calls) == model.config.n_layer
        torch.testing.assert_close(written, fused, rtol=0.02, atol=0.02)


def test_kv_cache_refuses_to_overflow():
    model = tiny("transformer-gptoss")
    _, state = model.step(random_ids(1, BLOCK), model.init_state(1))
    with pytest.raises(ValueError):
        model.step(random_ids(1, 1), state)


def test_rmsnorm_matches_formula_and_torch():
    config = TransformerConfig(d_model=16, n_head=4, norm="rmsnorm", norm_eps=1e-5)
    norm = make_norm(config)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 1.5, 16))
    x = torch.randn(3, 5, 16)
    by_hand = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * norm.weight
    reference = nn.RMSNorm(16, eps=1e-5)
    reference.load_state_dict(norm.state_dict())
    torch.testing.assert_close(norm(x), by_hand)
    torch.testing.assert_close(norm(x), reference(x))


def test_rope_scores_depend_only_on_relative_position():
    head_dim = 8
    cos, sin = rope_tables(head_dim, 64, base=10000.0)
    q, k = torch.randn(head_dim), torch.randn(head_dim)

    def score(q_pos: int, k_pos: int) -> torch.Tensor:
        return apply_rope(q, cos[q_pos], sin[q_pos]) @ apply_rope(k, cos[k_pos], sin[k_pos])

    for shift in (1, 7, 40):
        torch.testing.assert_close(score(3 + shift, 10 + shift), score(3, 10))
        torch.testing.assert_close(score(10 + shift, 3 + shift), score(10, 3))
    assert not torch.isclose(score(3, 10), score(3, 11))  # a different distance does matter
    torch.testing.assert_close(apply_rope(q, cos[5], sin[5]).norm(), q.norm())  # a pure rotation


def _attention(n_kv_head: int, bias: bool = True) -> CausalSelfAttention:
    torch.manual_seed(0)
    attention = CausalSelfAttention(TransformerConfig(d_model=16, n_head=4, n_kv_head=n_kv_head, bias=bias))
    for parameter in attention.parameters():  # default init leaves biases zero; make them matter
        nn.init.normal_(parameter, std=0.3)
    return attention.eval()


def test_attention_with_n_kv_head_equal_n_head_is_plain_multi_head_attention():
    ours = _attention(n_kv_head=4)
    torch_mha = nn.MultiheadAttention(16, 4, bias=True, batch_first=True)
    with torch.no_grad():  # same layout: fused [q; k; v] rows, heads contiguous within each
        torch_mha.in_proj_weight.copy_(ours.qkv.weight)
        torch_mha.in_proj_bias.copy_(ours.qkv.bias)
        torch_mha.out_proj.weight.copy_(ours.proj.weight)
        torch_mha.out_proj.bias.copy_(ours.proj.bias)
    x = torch.randn(2, 7, 16)
    future = torch.ones(7, 7, dtype=torch.bool).triu(1)  # True = may not attend
    expected, _ = torch_mha(x, x, x, attn_mask=future, need_weights=False)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)


def test_grouped_query_attention_equals_attention_with_repeated_kv_heads():
    grouped, plain = _attention(n_kv_head=2), _attention(n_kv_head=4)
    head_dim, d = 4, 16
    q_w, k_w, v_w = grouped.qkv.weight.split([d, 2 * head_dim, 2 * head_dim])
    q_b, k_b, v_b = grouped.qkv.bias.split([d, 2 * head_dim, 2 * head_dim])

    def repeat_heads(t: torch.Tensor) -> torch.Tensor:  # query heads 0,1 share kv head 0; 2,3 share 1
        return t.unflatten(0, (2, head_dim)).repeat_interleave(2, dim=0).flatten(0, 1)

    with torch.no_grad():
        plain.qkv.weight.copy_(torch.cat([q_w, repeat_heads(k_w), repeat_heads(v_w)]))
        plain.qkv.bias.copy_(torch.cat([q_b, repeat_heads(k_b), repeat_heads(v_b)]))
        plain.proj.load_state_dict(grouped.proj.state_dict())
        x = torch.randn(2, 6, d)
        cos, sin = rope_tables(head_dim, 6, 10000.0)
        torch.testing.assert_close(grouped(x, (cos, sin)), plain(x, (cos, sin)), rtol=1e-5, atol=1e-5)


def test_onehot_lookup_form_equals_explicit_chunked_one_hot_product():
    model = tiny("kgram-onehot")
    ids = random_ids(3, BLOCK)
    padded = F.pad(ids, (model.config.k - 1, 0), value=PAD)
    lookup = model._first_layer(padded)
    explicit = onehot_first_layer_reference(model, ids, chunk_size=5)  # 36 positions: a partial chunk
    torch.testing.assert_close(lookup, explicit, rtol=1e-5, atol=1e-5)
    # The gradients agree too, so training on the lookup form trains the one-hot layer.
    (grad_lookup,) = torch.autograd.grad(lookup.square().sum(), model.onehot_table)
    (grad_explicit,) = torch.autograd.grad(explicit.square().sum(), model.onehot_table)
    torch.testing.assert_close(grad_lookup, grad_explicit, rtol=1e-5, atol=1e-5)


def test_reference_param_counts_match_the_formula():
    V = 50257

    def layernorm(d):  # gain + bias
        return 2 * d

    def rmsnorm(d):  # gain only
        return d

    # mingpt / gpt2: learned positions (S x d), biased Linears, GELU MLP (d->f->d), tied head.
    def gpt(d, L, f, S=1024):
        attention = (d * 3 * d + 3 * d) + (d * d + d)
        mlp = (d * f + f) + (f * d + d)
        return V * d + S * d + L * (attention + mlp + 2 * layernorm(d)) + layernorm(d)

    # gptoss / llama3lite: RoPE (no table), no biases, SwiGLU (3 matrices), untied head.
    def modern(d, L, f, n_head, n_kv_head):
        head_dim = d // n_head
        attention = d * (n_head + 2 * n_kv_head) * head_dim + d * d
        mlp = 3 * d * f
        return V * d + L * (attention + mlp + 2 * rmsnorm(d)) + rmsnorm(d) + d * V

    expected = {
        "mingpt": gpt(d=384, L=6, f=1536),  # 30,339,456
        "gpt2": gpt(d=768, L=8, f=3072),  # 96,088,320
        "gptoss": modern(d=512, L=8, f=2048, n_head=8, n_kv_head=8),  # 85,026,304
        "llama3lite": modern(d=1024, L=8, f=8192, n_head=16, n_kv_head=4),  # 325,241,856
    }
    assert reference_param_counts(V) == expected


def test_flops_per_token_counts_matmul_weights_and_attention():
    model = tiny("transformer-mingpt")  # tied: the head matrix counts once, the lookups not at all
    d, L, f = 16, 2, 24
    matmul_weights = L * (d * 3 * d + d * d + d * f + f * d) + VOCAB * d
    assert model.flops_per_token(BLOCK) == 6 * matmul_weights + 12 * L * d * BLOCK

    onehot = tiny("kgram-onehot")  # first layer is a lookup: only the 16x16 layer and the head
    assert onehot.flops_per_token(BLOCK) == 6 * (16 * 16 + 16 * VOCAB)

    lstm = tiny("lstm")  # weight_ih/hh per layer (4H x in, 4H x H), then the head
    H = 16
    assert lstm.flops_per_token(BLOCK) == 6 * (4 * H * 8 + 4 * H * H + 4 * H * H + 4 * H * H + H * VOCAB)


@pytest.mark.parametrize("name", TINY_SPECS)
def test_state_dict_and_config_rebuild_identical_model(name):
    model = tiny(name)
    saved_config = json.loads(json.dumps(asdict(model.config)))  # what a checkpoint stores
    saved_weights = model.state_dict()
    torch.manual_seed(123)  # different random init, overwritten by the load
    rebuilt = model_from_config(model.family, saved_config)
    rebuilt.load_state_dict(saved_weights)
    ids = random_ids(2, BLOCK)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(ids), model(ids))
    assert rebuilt.num_params() == model.num_params()


def test_spec_resolution_preset_overrides_and_block_size():
    spec = {"family": "transformer", "preset": "gpt2", "n_layer": 2}
    config = model_config(spec, vocab_size=VOCAB, block_size=64, pad_id=PAD)
    assert (config.d_model, config.n_layer, config.n_kv_head, config.tie_weights) == (768, 2, 12, True)
    assert config.max_seq_len == 64 and config.vocab_size == VOCAB  # table cropped to the block size
    explicit = model_config({"family": "transformer", "max_seq_len": 100}, vocab_size=VOCAB, block_size=64, pad_id=PAD)
    assert explicit.max_seq_len == 100
    for spec in ({"family": "kgram"}, {"family": "lstm"}):  # no position limit: any block size
        assert model_config(spec, vocab_size=VOCAB, block_size=5000, pad_id=PAD).max_seq_len == 5000


GOOD = {
    "transformer": {"family": "transformer", "preset": "gptoss", "d_model": 16, "n_layer": 2, "n_head": 4, "d_ff": 32},
    "kgram": {"family": "kgram", "variant": "conv", "k": 3, "kernel_size": 2},
    "lstm": {"family": "lstm", "hidden": 16},
}

BAD_SPECS = [
    # (base, changes, block_size, field named in the message)
    ("lstm", {"family": "rnn"}, 8, "family"),
    ("lstm", {"family": None}, 8, "family"),
    ("kgram", {"variant": "bigram"}, 8, "variant"),
    ("transformer", {"preset": "gpt5"}, 8, "preset"),
    ("transformer", {"widht": 32}, 8, "widht"),
    ("lstm", {"preset": "gpt2"}, 8, "preset"),
    ("transformer", {"vocab_size": 100}, 8, "vocab_size"),
    ("transformer", {"d_model": 18}, 8, "d_model"),
    ("transformer", {"n_kv_head": 3}, 8, "n_kv_head"),
    ("transformer", {"n_layer": 11}, 8, "n_layer"),
    ("lstm", {"n_layer": 11}, 8, "n_layer"),
    ("kgram", {"n_hidden_layers": 11}, 8, "n_hidden_layers"),
    ("transformer", {"preset": "gpt2"}, 2048, "max_seq_len"),
    ("transformer", {"max_seq_len": 16}, 32, "max_seq_len"),
    ("transformer", {"d_model": 0}, 8, "d_model"),
    ("transformer", {"d_ff": -4}, 8, "d_ff"),
    ("transformer", {"n_head": "4"}, 8, "n_head"),
    ("kgram", {"k": 0}, 8, "k"),
    ("kgram", {"hidden": 12.5}, 8, "hidden"),
    ("lstm", {"d_embed": True}, 8, "d_embed"),
    ("transformer", {"dropout": 1.0}, 8, "dropout"),
    ("lstm", {"dropout": -0.1}, 8, "dropout"),
    ("kgram", {"kernel_size": 4}, 8, "kernel_size"),
    ("transformer", {"d_model": 12, "n_head": 4}, 8, "d_model"),  # head size 3: odd, RoPE cannot pair it
    ("transformer", {"norm": "batchnorm"}, 8, "norm"),
]


@pytest.mark.parametrize("base, changes, block_size, field", BAD_SPECS)
def test_invalid_spec_raises_pico_error_naming_the_key(base, changes, block_size, field):
    spec = {**GOOD[base], **changes}
    with pytest.raises(PicoError, match=rf"models\.bad\.{field}\b") as caught:
        build_model(spec, vocab_size=VOCAB, block_size=block_size, pad_id=PAD, key="models.bad")
    message = str(caught.value)
    assert "allowed" in message or "must" in message
    if field in changes and changes[field] is not None:
        assert repr(changes[field]) in message or str(changes[field]) in message


@pytest.mark.parametrize("base", GOOD)
def test_good_specs_build_the_model_they_describe(base):
    spec = GOOD[base]
    model = build_model(spec, vocab_size=VOCAB, block_size=8, pad_id=PAD, key="models.good")
    assert model.family == spec["family"] and model.max_context == 8
    config = asdict(model.config)
    assert {key: config[key] for key in spec if key not in ("family", "preset")} == {
        key: value for key, value in spec.items() if key not in ("family", "preset")}
    assert config["vocab_size"] == VOCAB and config.get("pad_id", PAD) == PAD
    # The preset fills what the spec leaves out (n_kv_head None: one per head; the table: cropped).
    preset = TRANSFORMER_PRESETS.get(spec.get("preset"), {})
    assert {k: config[k] for k in preset if k not in spec and k not in ("n_kv_head", "max_seq_len")} == {
        k: v for k, v in preset.items() if k not in spec and k not in ("n_kv_head", "max_seq_len")}
    with torch.no_grad():
        assert model.eval()(random_ids(2, 8)).shape == (2, 8, VOCAB)
    assert model.num_params() == sum(p.numel() for p in model.parameters()) > 0


def test_rebuilding_from_a_bad_checkpoint_config_raises_pico_error():
    with pytest.raises(PicoError, match="checkpoint.family"):
        model_from_config("rnn", {})
    with pytest.raises(PicoError, match="checkpoint.model_config.colour"):
        model_from_config("lstm", {"colour": "red"})
