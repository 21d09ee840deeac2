"""The `bench` stage's accounting and plumbing (no timing assertions: speed targets live in the
stage's report, measured against the machine's own peak, never in a timed test).

- FLOPs: `flops_per_token` of the reference gpt2 configuration is the hand formula;
- a tiny in-process `run_bench` writes every key the report and its table read, and a
  worker subprocess reports the same per-model keys;
- bf16 autocast follows the fp32 loss curve on the same batches;
- the hot-path pieces the bench times: the loss (torch's values and gradients), fused AdamW,
  the multi-threaded encoder (tiktoken's ids), the memmap batches (no re-opening, no copy).
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from picollm.bench import jobs as bench_jobs
from picollm.bench import plan as bench_plan
from picollm.bench import report as bench_report
from picollm.bench import run as bench_run
from picollm.config import END_OF_TEXT, BenchParams, TrainParams
from picollm.data.tokens import TokenStream, encode_stream
from picollm.device import ProcessGroup
from picollm.errors import PicoError
from picollm.io import replace_marked_block
from picollm.losses import cross_entropy
from picollm.models.registry import build_model
from picollm.optim import make_optimizer
from picollm.params import load_params, parse_params
from picollm.train import train_step

import helpers as H

TINY_BENCH = {
    "batch_size": 2, "block_size": 16, "vocab_size": 300, "models": {
        "tiny": {"family": "transformer", "preset": "gptoss", "d_model": 16, "n_head": 2, "n_kv_head": 2, "d_ff": 32, "n_layer": 1},
        "kgram_embed": {"family": "kgram", "variant": "embed", "k": 3, "d_embed": 8, "hidden": 16, "n_hidden_layers": 1},
        "lstm": {"family": "lstm", "d_embed": 8, "hidden": 16, "n_layer": 1}},
    "reference": {"family": "transformer", "preset": "gpt2", "bias": False, "dropout": 0.0, "n_layer": 1, "n_head": 2,
                  "d_model": 16, "d_ff": 32},
    "reference_vocab_size": 512, "warmup_steps": 1, "repeats": 1, "min_seconds": 0.0, "peak_size": 64,
    "bfloat16": "never", "isolate": False, "generation": {"model": "tiny", "new_tokens": 6, "repeats": 1},
    "tokenizer_mb": 0.01,
}


def test_flops_per_token_of_the_reference_gpt2_is_the_hand_formula():
    params = load_params(H.PROJECT_ROOT / "params.yaml").bench
    assert params.reference == BenchParams().reference  # the shipped params time the documented reference
    V, T = params.reference_vocab_size, params.block_size
    model = build_model(params.reference, vocab_size=V, block_size=T, pad_id=0)
    d, L, f = 256, 4, 1024
    # qkv (3d^2) + attention output (d^2) + MLP (2 d f) per layer; the tied head (V d) once;
    # no biases; embeddings are lookups. 6 FLOPs per weight (forward + backward), plus the
    # attention scores and weighted sum: 12 L d T.
    weights = L * (4 * d * d + 2 * d * f) + V * d
    assert model.matmul_weight_count() == weights == 4_194_304
    assert model.flops_per_token(T) == 6 * weights + 12 * L * d * T == 28_311_552


def test_kgram_and_lstm_flops_count_their_matmuls_only():
    onehot = build_model({"family": "kgram", "variant": "onehot", "k": 3, "hidden": 8, "n_hidden_layers": 2},
                         vocab_size=50, block_size=16, pad_id=0)
    assert onehot.flops_per_token(16) == 6 * (8 * 8 + 8 * 50)  # the one-hot table is a lookup
    lstm = build_model({"family": "lstm", "d_embed": 4, "hidden": 8, "n_layer": 1}, vocab_size=50, block_size=16, pad_id=0)
    assert lstm.flops_per_token(16) == 6 * (4 * 8 * (4 + 8) + 8 * 50)


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    params = parse_params(H.smoke_params(bench=TINY_BENCH))
    _, tok, tokens = bench_run.bench_corpus(params, root)
    return tokens, tok, params


@pytest.fixture(scope="module")
def tiny_run(tiny_setup, tmp_path_factory):
    _, _, params = tiny_setup
    return bench_run.run_bench(params, tmp_path_factory.mktemp("bench-run"), log=lambda line: None)


def test_a_tiny_bench_run_has_every_key_the_report_reads(tiny_run, tmp_path):
    out = tiny_run
    assert {"machine", "peak_gflops", "bf16_peak_ratio", "settings", "train", "compile", "generation", "tokenizer",
            "loader", "checks", "seconds"} <= set(out)
    assert out["peak_gflops"]["float32"] > 0 and out["peak_gflops"]["bfloat16"] > 0
    assert set(out["machine"]["bf16"]) >= {"native", "cpu_flags", "onednn_bf16", "measured"}
    assert list(out["train"]) == ["tiny", "kgram_embed", "lstm", bench_plan.REFERENCE_NAME]
    for row in out["train"].values():
        fp32 = row["float32"]
        assert {"tokens_per_s", "gflops", "mfu", "peak_gflops", "peak_rss_mb", "params", "flops_per_token"} <= set(fp32)
        assert fp32["tokens_per_s"] > 0 and fp32["peak_rss_mb"] > 0 and math.isclose(
            fp32["gflops"], fp32["tokens_per_s"] * fp32["flops_per_token"] / 1e9)
        assert "skipped" in row["bfloat16"]  # bench.bfloat16: never
    assert {"tokens_per_s", "mfu"} <= set(out["train"]["lstm"]["torch_lstm"])
    for row in out["train"].values():
        fp32 = row["float32"]
        assert set(fp32["optimizers"]) == {"adamw", "muon"} and fp32["optimizer"] == "adamw"
        assert all(o["ms"] > 0 and 0 < o["share"] < 1 for o in fp32["optimizers"].values())
        adamw = fp32["optimizers"]["adamw"]
        assert math.isclose(adamw["share"], adamw["ms"] / max(fp32["step_ms"], adamw["ms"]))
    g = out["generation"]
    assert {"cache_tokens_per_s", "no_cache_tokens_per_s", "cache_speedup", "cache_first_token_ms",
            "no_cache_first_token_ms", "cache_ms_per_token", "overhead_ms_per_token", "arithmetic_ms_per_token",
            "overhead_share"} <= set(g)
    assert math.isclose(g["cache_ms_per_token"], 1000 / g["cache_tokens_per_s"])
    assert math.isclose(g["arithmetic_ms_per_token"], max(g["cache_ms_per_token"] - g["overhead_ms_per_token"], 0))
    assert {"decode KV-cache speedup", "decode first token ms"} <= set(out["checks"])
    assert out["checks"]["decode KV-cache speedup"]["target"] == 5.0
    assert {"mb_per_s", "mb_per_s_1_thread", "tiktoken_batch_mb_per_s", "mb_per_cpu_s"} <= set(out["tokenizer"])
    assert out["loader"]["batches_per_s"] > 0
    assert {"value", "target", "met"} <= set(out["checks"]["tokenizer MB/s"])
    json.dumps(out, allow_nan=False)  # the stage writes it as strict JSON

    table = bench_report.markdown_report(out)
    assert "| gpt2@reference |" in table and "torch.nn.LSTM" in table and "KV cache" in table
    assert "ms of per-op overhead" in table and "Optimizer step alone" in table and "muon" in table
    page = tmp_path / "page.md"
    page.write_text("# x\n<!-- results:begin -->\nR\n<!-- results:end -->\n<!-- bench:begin -->\nold\n<!-- bench:end -->\n")
    replace_marked_block(page, table, marker="bench")
    text = page.read_text()
    assert "old" not in text and table in text and "\nR\n" in text
    bench_report.plot_bench(out, tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_the_bf16_target_reads_the_better_of_the_eager_and_the_compiled_run(tiny_run):
    out = copy.deepcopy(tiny_run)
    row = out["train"]["tiny"]
    row["bfloat16"] = {**row["float32"], "mfu": 0.55}
    row["bf16_speedup"] = 1.8
    row["bfloat16_compiled"] = {**row["float32"], "mfu": 0.65, "first_step_seconds": 30.0}
    checks = bench_report.checks(out)
    assert checks["tiny bf16 MFU"] == {"value": 0.65, "target": 0.60, "met": True}
    out["checks"] = checks
    table = bench_report.markdown_report(out)
    assert "MFU 0.55 of the bf16 peak; compiled 0.65)" in table and "tiny 1.18x (first step 30 s)" in table
    row["bfloat16"]["mfu"], row["bfloat16_compiled"]["mfu"] = 0.62, 0.58  # compiling made it slower
    assert bench_report.checks(out)["tiny bf16 MFU"] == {"value": 0.62, "target": 0.60, "met": True}
    del row["bfloat16_compiled"]
    row["bfloat16"]["mfu"] = 0.55
    assert bench_report.checks(out)["tiny bf16 MFU"]["met"] is False


def test_compiling_on_a_cpu_needs_a_cpp_compiler(monkeypatch):
    from picollm import device

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(device.shutil, "which", lambda name: None)
    assert "no C++ compiler" in device.compile_unavailable("cpu")
    with pytest.raises(PicoError, match=r"train.compile = true cannot run on this machine: no C\+\+ compiler"):
        device.compile_model(torch.nn.Linear(2, 2))
    assert device.compile_unavailable("cuda") is None
    monkeypatch.setenv("CXX", "/opt/bin/g++")
    assert device.compile_unavailable("cpu") is None


@pytest.mark.slow
def test_a_worker_subprocess_reports_the_same_keys_as_in_process(tiny_setup, tiny_run):
    tokens, tok, params = tiny_setup
    spec = bench_plan.bench_spec(params, "tiny")
    job = bench_run.train_job(params, "tiny", spec, tok.vocab_size, tok.vocab_size, tok.eot_id, tokens,
                          "float32")
    isolated = bench_jobs.run_job(job, isolate=True)
    assert set(isolated) == set(tiny_run["train"]["tiny"]["float32"])
    assert isolated["params"] == tiny_run["train"]["tiny"]["float32"]["params"]


@pytest.mark.slow
def test_the_worker_times_data_parallel_training_under_torchrun(tiny_setup):
    # The scaling study's process axis: the same worker in 2 gloo processes, one report from rank 0
    # that adds up every rank's memory.
    tokens, tok, params = tiny_setup
    spec = bench_plan.bench_spec(params, "tiny")
    job = bench_run.train_job(params, "tiny", spec, tok.vocab_size, tok.vocab_size, tok.eot_id, tokens,
                          "float32", threads=1)
    two = bench_jobs.run_job(job, isolate=True, nproc=2)
    assert two["processes"] == 2 and two["threads"] == 1 and two["tokens_per_s"] > 0
    assert two["peak_rss_mb"] < two["total_rss_mb"] <= 2 * two["peak_rss_mb"]


def test_bench_params_are_checked_against_the_models():
    with pytest.raises(PicoError, match=r"bench.generation.model = 'nope' is not an entry of bench.models"):
        parse_params(H.smoke_params(bench={**TINY_BENCH, "generation": {"model": "nope"}}))
    bad = {**TINY_BENCH["models"]["tiny"], "d_model": 30, "n_head": 4}
    with pytest.raises(PicoError, match=r"bench.models.tiny.* n_head"):
        parse_params(H.smoke_params(bench={**TINY_BENCH, "models": {**TINY_BENCH["models"], "tiny": bad}}))
    with pytest.raises(PicoError, match=r"bench.models.rnn"):
        parse_params(H.smoke_params(bench={**TINY_BENCH, "models": {**TINY_BENCH["models"], "rnn": {"family": "rnn"}}}))


def _loss_curve(dtype: str, steps: int = 25) -> list[float]:
    spec = {"family": "transformer", "preset": "gptoss", "d_model": 32, "n_head": 2, "n_kv_head": 2, "n_layer": 2, "d_ff": 64}
    train = TrainParams(batch_size=8, block_size=32, dtype=dtype, lr=3e-3, warmup_steps=2, steps=steps)
    torch.manual_seed(0)
    model = build_model(spec, vocab_size=300, block_size=32, pad_id=0)
    optimizer = make_optimizer(model, train)
    pattern = torch.randint(300, (64,), generator=torch.Generator().manual_seed(0))
    batches = torch.Generator().manual_seed(1)
    losses = []
    for step in range(steps):  # the same batches for both dtypes: crops of a repeating pattern
        starts = torch.randint(0, 64, (8,), generator=batches)
        rows = pattern[(starts[:, None] + torch.arange(33)) % 64]
        batch = (rows[:, :-1], rows[:, 1:])
        losses.append(train_step(model, model, optimizer, batch, step, train, torch.device("cpu"), ProcessGroup(), 8, 1)[0])
    return losses


def test_bf16_autocast_follows_the_fp32_loss_curve():
    fp32, bf16 = _loss_curve("float32"), _loss_curve("bfloat16")
    assert fp32[-1] < 0.8 * fp32[0]  # it learns, so the curves are compared while they move
    worst = max(abs(a - b) / a for a, b in zip(fp32, bf16))
    assert worst < 0.02, f"bf16 loss departs from fp32 by {worst:.2%}"


def test_the_training_loss_matches_torch_cross_entropy_in_value_and_gradient():
    logits = torch.randn(64, 50, dtype=torch.float64) * 3
    targets = torch.randint(50, (64,))
    ours_in, ref_in = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours, ref = cross_entropy(ours_in, targets), torch.nn.functional.cross_entropy(ref_in, targets)
    (ours * 0.25).backward()
    (ref * 0.25).backward()
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(ours_in.grad, ref_in.grad)
    again = cross_entropy(logits.clone().requires_grad_(), targets)
    again.backward(retain_graph=True)
    with pytest.raises(RuntimeError):  # its backward consumed the saved log-probabilities
        again.backward()
    with torch.no_grad():
        torch.testing.assert_close(cross_entropy(logits, targets), torch.nn.functional.cross_entropy(logits, targets))


@pytest.mark.parametrize("rows, vocab", [(300, 2048), (70, 50_000)])  # blocks of 128 rows / MIN_BLOCK_ROWS
def test_bf16_logits_give_the_float32_loss_and_gradient_bit_for_bit(rows, vocab):
    logits = (torch.randn(rows, vocab, generator=torch.Generator().manual_seed(0)) * 3).to(torch.bfloat16)
    targets = torch.randint(vocab, (rows,), generator=torch.Generator().manual_seed(1))
    blockwise, cast_first = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours = cross_entropy(blockwise, targets)  # never casts all the logits at once
    reference = cross_entropy(cast_first.float(), targets)  # what the training step did before
    (ours * 0.25).backward()
    (reference * 0.25).backward()
    assert ours.dtype == torch.float32 and torch.equal(ours, reference)
    assert blockwise.grad.dtype == torch.bfloat16 and torch.equal(blockwise.grad, cast_first.grad)


def test_adamw_is_fused_on_cpu():
    model = torch.nn.Linear(4, 4)
    optimizer = make_optimizer(model, TrainParams())
    assert optimizer.defaults["fused"] is True


def test_the_cache_encoder_gives_each_documents_own_ids_then_the_end_of_text_id(tiny_setup):
    """One call per thread for many documents, joined by the end-of-text marker, changes no id:
    against tiktoken's per-document encoding, on one and two threads, with an empty document, one
    that ends in a space and one that holds the marker itself."""
    _, tok, _ = tiny_setup
    texts = [*H.synthetic_texts(50, seed=3), "", "ends with a space ", f"holds the {END_OF_TEXT} marker", "x"]
    expected = [i for ids in tok.encode_batch(texts, threads=1) for i in (*ids, tok.eot_id)]
    assert encode_stream(tok, texts, 2).tolist() == encode_stream(tok, texts, 1).tolist() == expected
    assert encode_stream(tok, texts[:1], 4).tolist() == expected[: len(tok.encode(texts[0])) + 1]
    plain = texts[:-2] + ["x"]  # no marker: the one-call path
    assert encode_stream(tok, plain, 2).tolist() == [i for ids in tok.encode_batch(plain, threads=1) for i in (*ids, tok.eot_id)]
    assert encode_stream(tok, [], 2).tolist() == []


def test_batches_are_cut_from_the_memmap_opened_once(tiny_setup, monkeypatch):
    tokens, tok, _ = tiny_setup
    stream = TokenStream.open(tokens, tok.vocab_size)
    opened = []
    monkeypatch.setattr(np, "memmap", lambda *a, **k: opened.append(a))
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        x, y = stream.batch(generator, 4, 16)
    assert opened == [] and x.shape == y.shape == (4, 16) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])


def test_the_dispatch_twin_is_the_same_graph_at_negligible_width():
    spec = {"family": "transformer", "preset": "llama3lite", "d_model": 64, "n_head": 4, "n_kv_head": 2, "n_layer": 3,
            "d_ff": 128}
    model = build_model(spec, vocab_size=500, block_size=40, pad_id=0)
    twin = bench_jobs.dispatch_twin(model)
    same = ("n_layer", "n_head", "n_kv_head", "norm", "mlp", "positions", "max_seq_len", "bias", "tie_weights")
    assert {k: getattr(twin.config, k) for k in same} == {k: getattr(model.config, k) for k in same}
    assert (twin.config.d_model, twin.config.d_ff, twin.config.vocab_size) == (8, 8, bench_jobs.DISPATCH_VOCAB)
    assert twin.num_params() < model.num_params() / 50
    lstm = build_model(TINY_BENCH["models"]["lstm"], vocab_size=50, block_size=8, pad_id=0)
    assert bench_jobs.dispatch_twin(lstm) is None
    out = bench_jobs.generation_speed(lstm, [1, 2], new_tokens=3, repeats=2)  # no twin: no overhead split
    assert "overhead_ms_per_token" not in out and out["cache_speedup"] > 0
    assert "per-op overhead" not in bench_report.overhead_sentence(out)
