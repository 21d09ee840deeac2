"""Decoding's few-row steps split their matmuls over the threads (picollm/models/row_split.py)
and get the very bits the plain `F.linear` gets, so no decoded token depends on it."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

import picollm.models.row_split as row_split
import picollm.models.transformer as transformer
from picollm.models.registry import build_model
from picollm.models.row_split import SPLIT_MAX_ROWS, decode_parts, linear, slab_count, split_is_exact


@pytest.fixture
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # conftest runs the tests on one; the split needs several
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fresh_verdicts(monkeypatch):
    monkeypatch.setattr(row_split, "_split_is_exact", {})  # each test checks its shapes anew


def test_a_split_few_row_product_equals_the_plain_one_bit_for_bit(two_threads, fresh_verdicts):
    torch.manual_seed(0)
    split_some = set()
    for n_in in (64, 96, 128, 256, 384, 1024):
        for n_out in (48, 128, 256, 384, 768, 1024, 2048, 3072, 4096, 50304):
            for bias in (True, False):
                module = nn.Linear(n_in, n_out, bias=bias)
                for parts, rows in itertools.product((2, 3, 8), (1, 3, 4, 5, 8, SPLIT_MAX_ROWS, SPLIT_MAX_ROWS + 1)):
                    x = torch.randn(1, rows, n_in)
                    with torch.inference_mode():
                        split, plain = linear(module, x, parts), module(x)
                    assert split.shape == plain.shape == (1, rows, n_out)
                    assert torch.equal(split, plain), (n_in, n_out, bias, parts, rows)
                    slabs = slab_count(n_out, n_in, parts)
                    if slabs > 1 and rows <= SPLIT_MAX_ROWS and split_is_exact(module.weight, module.bias, rows, slabs):
                        split_some.add(rows)
    # On the CPUs the project runs on, one row and a 4-token prompt's rows split (the bench's case).
    assert {1, 4} <= split_some


def test_a_shape_whose_split_differs_is_not_split(two_threads, fresh_verdicts, monkeypatch):
    module = nn.Linear(256, 1024)
    x = torch.randn(1, 1, 256)
    exact = row_split.split_linear
    monkeypatch.setattr(row_split, "split_linear", lambda *args: exact(*args).nextafter(torch.tensor(1.0)))
    with torch.inference_mode():
        assert torch.equal(linear(module, x, 2), module(x))  # the check caught it: the plain call
    assert row_split._split_is_exact == {(1024, 256, 1, 2, True, 2): False}
    monkeypatch.setattr(row_split, "split_linear", lambda *args: pytest.fail("split after it was found inexact"))
    with torch.inference_mode():
        assert torch.equal(linear(module, x, 2), module(x))


def test_a_weight_of_zeros_proves_nothing_and_is_not_split(two_threads, fresh_verdicts):
    module = nn.Linear(256, 1024, bias=False)
    nn.init.zeros_(module.weight)
    assert not split_is_exact(module.weight, None, 1, 2)


def test_the_check_leaves_the_global_random_generator_alone(two_threads, fresh_verdicts):
    module = nn.Linear(256, 1024)
    torch.manual_seed(0)
    with torch.inference_mode():
        linear(module, torch.zeros(1, 1, 256), 2)  # the first split of this shape: checked
    assert row_split._split_is_exact
    drawn = torch.rand(4)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(4), drawn)


def test_what_is_not_split_goes_through_the_module_unchanged(two_threads, fresh_verdicts):
    calls = []
    big, small = nn.Linear(256, 1024), nn.Linear(16, 256)
    for module in (big, small):
        module.register_forward_hook(lambda *_: calls.append(1))
    with torch.inference_mode():
        linear(big, torch.randn(1, 1, 256), 3)  # rows that do not divide into 3 slabs (nor 1)
        linear(big, torch.randn(1, SPLIT_MAX_ROWS + 1, 256), 2)  # too many rows
        linear(big, torch.randn(1, 1, 256), 1)  # no split asked
        linear(small, torch.randn(1, 1, 16), 2)  # slabs too small for the BLAS
        assert calls == [1, 1, 1, 1]
        linear(big, torch.randn(1, 1, 256), 2)  # split: the batched matmul, not the module
        linear(big, torch.randn(2, 2, 256), 2)
    assert calls == [1, 1, 1, 1]


def test_only_a_few_float32_tokens_on_a_cpu_are_split(two_threads):
    one = torch.zeros(1, 1, dtype=torch.long)
    assert decode_parts(one) == 2
    assert decode_parts(torch.zeros(1, SPLIT_MAX_ROWS, dtype=torch.long)) == 2  # a short prompt's prefill
    assert decode_parts(torch.zeros(1, SPLIT_MAX_ROWS + 1, dtype=torch.long)) == 1  # a longer one
    assert decode_parts(torch.zeros(SPLIT_MAX_ROWS + 1, 1, dtype=torch.long)) == 1  # a batch of that many
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert decode_parts(one) == 1
    torch.set_num_threads(1)
    assert decode_parts(one) == 1


@pytest.mark.parametrize("preset", ["gpt2", "llama3lite"])
def test_decoding_steps_give_the_same_logits_with_and_without_the_split(two_threads, monkeypatch, preset):
    torch.manual_seed(0)
    spec = {"family": "transformer", "preset": preset, "d_model": 128, "n_head": 4, "n_layer": 2, "d_ff": 512}
    if preset == "llama3lite":
        spec["n_kv_head"] = 2
    model = build_model(spec, vocab_size=512, block_size=32, pad_id=0, key="models.test").eval()
    tokens = torch.randint(0, 512, (1, 24), generator=torch.Generator().manual_seed(1))
    batched = []
    for name in ("bmm", "baddbmm"):
        original = getattr(torch, name)
        monkeypatch.setattr(torch, name, lambda *args, _f=original: batched.append(1) or _f(*args))

    def step_logits() -> list[torch.Tensor]:
        with torch.inference_mode():
            logits, state = model.step(tokens[:, :4], model.init_state(1))
            out = [logits]
            for t in range(4, tokens.size(1)):
                logits, state = model.step(tokens[:, t : t + 1], state)
                out.append(logits)
        return out

    step_logits()  # the first split of each shape is checked, which runs split_linear too
    batched.clear()
    split = step_logits()
    assert len(batched) >= 21 * 4  # the prefill's and every step's matmuls, the head's aside, split
    monkeypatch.setattr(transformer, "decode_parts", lambda idx: 1)
    plain = step_logits()
    assert all(torch.equal(a, b) for a, b in zip(split, plain, strict=True))


def test_more_threads_than_a_weight_takes_split_it_into_fewer_slabs():
    assert slab_count(768, 256, 16) == 4  # 48 and 96 rows are not whole blocks; 192 are
    assert slab_count(1024, 256, 16) == 16  # 64 rows of 256: just at SLAB_MIN_WEIGHTS
    assert slab_count(1024, 128, 16) == 8  # 64 rows of 128 are too few weights, 128 rows enough
    assert slab_count(768, 256, 6) == 6 and slab_count(768, 256, 5) == 2
    assert slab_count(96, 256, 2) == 1 and slab_count(1024, 256, 1) == 1
