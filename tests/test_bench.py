"""The `bench` stage's accounting and plumbing (no timing assertions: speed targets live in the
stage's report, measured against the machine's own peak, never in a timed test).

- FLOPs: `flops_per_token` of the reference gpt2 configuration is the hand formula;
- a tiny in-process `run_bench` writes every key the report and the README table read, and a
  worker subprocess reports the same per-model keys;
- bf16 autocast follows the fp32 loss curve on the same batches;
- the hot-path pieces the bench times: the loss (torch's values and gradients), fused AdamW,
  the multi-threaded encoder (tiktoken's ids), the memmap batches (no re-opening, no copy).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import helpers as H
from picollm import bench
from picollm.compare import update_readme
from picollm.config import BenchParams, TrainParams, load_params, parse_params
from picollm.data.tokens import TokenStream, encode_texts
from picollm.device import ProcessGroup
from picollm.errors import PicoError
from picollm.models.registry import build_model
from picollm.train import cross_entropy, make_optimizer, train_step

TINY_BENCH = {
    "batch_size": 2, "block_size": 16, "sizes": {"transformer": {"d_model": 16, "n_head": 2, "d_ff": 32, "n_layer": 1},
                                                 "kgram": {"hidden": 16}, "lstm": {}},
    "reference": {"family": "transformer", "preset": "gpt2", "bias": False, "dropout": 0.0, "n_layer": 1, "n_head": 2,
                  "d_model": 16, "d_ff": 32},
    "reference_vocab_size": 512, "warmup_steps": 1, "repeats": 1, "min_seconds": 0.0, "peak_size": 64,
    "bfloat16": "never", "isolate": False, "generation": {"model": "tiny", "new_tokens": 6, "repeats": 1},
    "tokenizer_mb": 0.01, "models": ["tiny", "kgram_embed", "lstm"],
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
    texts = H.synthetic_texts(200)
    tok = H.make_token_dir(root / "tokens", texts)
    (root / "prepared").mkdir()
    with open(root / "prepared" / "train.jsonl", "w", encoding="utf-8") as handle:
        for text in texts:
            handle.write(json.dumps({"text": text, "source": "text", "logprob": None}) + "\n")
    params = parse_params(H.smoke_params(bench=TINY_BENCH))
    return root, tok, params


@pytest.fixture(scope="module")
def tiny_run(tiny_setup):
    root, _, params = tiny_setup
    return bench.run_bench(params, root / "tokens", root / "prepared", log=lambda line: None)


def test_a_tiny_bench_run_has_every_key_the_report_reads(tiny_run, tmp_path):
    out = tiny_run
    assert {"machine", "peak_gflops", "bf16_peak_ratio", "settings", "train", "compile", "generation", "tokenizer",
            "loader", "checks", "seconds"} <= set(out)
    assert out["peak_gflops"]["float32"] > 0 and out["peak_gflops"]["bfloat16"] > 0
    assert set(out["machine"]["bf16"]) >= {"native", "cpu_flags", "onednn_bf16", "measured"}
    assert list(out["train"]) == ["tiny", "kgram_embed", "lstm", bench.REFERENCE_NAME]
    for name, row in out["train"].items():
        fp32 = row["float32"]
        assert {"tokens_per_s", "gflops", "mfu", "peak_gflops", "peak_rss_mb", "params", "flops_per_token"} <= set(fp32)
        assert fp32["tokens_per_s"] > 0 and fp32["peak_rss_mb"] > 0 and math.isclose(
            fp32["gflops"], fp32["tokens_per_s"] * fp32["flops_per_token"] / 1e9)
        assert "skipped" in row["bfloat16"]  # bench.bfloat16: never
    assert {"tokens_per_s", "mfu"} <= set(out["train"]["lstm"]["torch_lstm"])
    assert {"cache_tokens_per_s", "no_cache_tokens_per_s", "cache_speedup", "cache_first_token_ms",
            "no_cache_first_token_ms"} <= set(out["generation"])
    assert {"mb_per_s", "mb_per_s_1_thread", "tiktoken_batch_mb_per_s", "mb_per_cpu_s"} <= set(out["tokenizer"])
    assert out["loader"]["batches_per_s"] > 0
    assert {"value", "target", "met"} <= set(out["checks"]["tokenizer MB/s"])
    json.dumps(out, allow_nan=False)  # the stage writes it as strict JSON

    table = bench.markdown_report(out)
    assert "| gpt2@reference |" in table and "torch.nn.LSTM" in table and "KV cache" in table
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- results:begin -->\nR\n<!-- results:end -->\n<!-- bench:begin -->\nold\n<!-- bench:end -->\n")
    update_readme(readme, table, marker="bench")
    text = readme.read_text()
    assert "old" not in text and table in text and "\nR\n" in text
    bench.plot_bench(out, tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_a_worker_subprocess_reports_the_same_keys_as_in_process(tiny_setup, tiny_run):
    root, tok, params = tiny_setup
    spec = bench.bench_spec(params, "tiny")
    job = bench.train_job(params, "tiny", spec, tok.vocab_size, tok.vocab_size, tok.eot_id, root / "tokens" / "train.bin",
                          "float32")
    isolated = bench.run_job(job, isolate=True)
    assert set(isolated) == set(tiny_run["train"]["tiny"]["float32"])
    assert isolated["params"] == tiny_run["train"]["tiny"]["float32"]["params"]


def test_the_worker_times_data_parallel_training_under_torchrun(tiny_setup):
    # The scaling study's process axis: the same worker in 2 gloo processes, one report from rank 0
    # that adds up every rank's memory.
    root, tok, params = tiny_setup
    spec = bench.bench_spec(params, "tiny")
    job = bench.train_job(params, "tiny", spec, tok.vocab_size, tok.vocab_size, tok.eot_id, root / "tokens" / "train.bin",
                          "float32", threads=1)
    two = bench.run_job(job, isolate=True, nproc=2)
    assert two["processes"] == 2 and two["threads"] == 1 and two["tokens_per_s"] > 0
    assert two["peak_rss_mb"] < two["total_rss_mb"] <= 2 * two["peak_rss_mb"]


def test_bench_params_are_checked_against_the_models():
    with pytest.raises(PicoError, match=r"bench.generation.model='nope'"):
        parse_params(H.smoke_params(bench={**TINY_BENCH, "generation": {"model": "nope"}}))
    with pytest.raises(PicoError, match=r"bench.sizes.transformer applied to models.tiny.* n_head"):
        parse_params(H.smoke_params(bench={**TINY_BENCH, "sizes": {"transformer": {"d_model": 30, "n_head": 4}}}))
    with pytest.raises(PicoError, match=r"bench.sizes.rnn.* should be 'kgram', 'lstm' or 'transformer'"):
        parse_params(H.smoke_params(bench={**TINY_BENCH, "sizes": {"rnn": {}}}))


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


def test_adamw_is_fused_on_cpu():
    model = torch.nn.Linear(4, 4)
    optimizer = make_optimizer(model, TrainParams())
    assert optimizer.defaults["fused"] is True


def test_multithreaded_encoding_gives_tiktokens_ids(tiny_setup):
    _, tok, _ = tiny_setup
    texts = H.synthetic_texts(50, seed=3)
    expected = tok.encode_batch(texts, threads=1)
    assert encode_texts(tok, texts, 2) == encode_texts(tok, texts, 1) == expected
    assert encode_texts(tok, texts[:1], 4) == expected[:1]


def test_batches_are_cut_from_the_memmap_opened_once(tiny_setup, monkeypatch):
    root, tok, _ = tiny_setup
    stream = TokenStream.open(root / "tokens" / "train.bin", tok.vocab_size)
    opened = []
    monkeypatch.setattr(np, "memmap", lambda *a, **k: opened.append(a))
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        x, y = stream.batch(generator, 4, 16)
    assert opened == [] and x.shape == y.shape == (4, 16) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
