"""Timing jobs: a training step, torch's LSTM alone, decoding, the tokenizer and the data loader.

A training job runs in this process (its peak RSS counted from the job's start, where Linux can
reset it) or, when the bench isolates its models, in a fresh interpreter
(`python -m picollm.bench.jobs worker JOB`), which holds nothing from earlier jobs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from picollm.bench.machine import matmul_peak, peak_rss_mb, reset_peak_rss, sync
from picollm.config import TrainParams
from picollm.data.tokens import TokenStream, encode_stream
from picollm.device import init_process_group, resolve_device
from picollm.errors import PicoError
from picollm.generation import generate
from picollm.models.base import LanguageModel
from picollm.models.registry import build_model
from picollm.optim import hidden_matrices, make_optimizer
from picollm.sampling import SamplingConfig
from picollm.train import accumulation_steps, train_step, training_runner

GREEDY = SamplingConfig(greedy=True)


def _run_for(run_once: Callable[[], int], min_seconds: float) -> tuple[int, float, float]:
    """run_once() until `min_seconds` have passed: (the units it returned, wall and CPU seconds).

    The CPU time is this process's (all its threads): on a busy machine a rate per CPU-second
    moves much less than the wall-clock one, which is the one reported first."""
    units, began, cpu_began = 0, time.perf_counter(), time.process_time()
    while True:
        units += run_once()
        elapsed = time.perf_counter() - began
        if elapsed >= min_seconds:
            return units, elapsed, time.process_time() - cpu_began


def _calls(run: Callable[[], object]) -> Callable[[], int]:
    """`run` as a `_run_for` step whose unit is one call."""
    def once() -> int:
        run()
        return 1
    return once


def _timed_repeats(run_once: Callable[[], int], repeats: int, min_seconds: float, peak: Callable[[], dict]) -> list[dict]:
    """`repeats` x (peak measurement, then run_once() for `min_seconds`): units/s and the peak."""
    rows = []
    for _ in range(repeats):
        measured = peak()
        units, elapsed, cpu = _run_for(run_once, min_seconds)
        rows.append({"rate": units / elapsed, "peak_gflops": measured["gflops"], "seconds": elapsed,
                     "rate_cpu": units / max(cpu, 1e-9), "peak_gflops_cpu": measured["gflops_cpu"]})
    return rows


def train_speed(job: dict) -> dict:
    """Time the training loop's own step for one model; the job is plain JSON (see `_train_job`)."""
    reset_peak_rss()
    if job["threads"]:
        torch.set_num_threads(job["threads"])
    train = TrainParams.model_validate(job["train"])
    device = resolve_device(train.device, train.allow_device_fallback, announce=False)
    group = init_process_group(device)  # under torchrun: data-parallel, as train.nproc > 1 trains
    micro, accum = accumulation_steps(train, group)
    stream = TokenStream.open(job["tokens"], job["stream_vocab_size"])
    torch.manual_seed(job["seed"])
    model = build_model(job["spec"], vocab_size=job["vocab_size"], block_size=train.block_size, pad_id=job["pad_id"],
                        key=job["name"]).to(device)
    optimizer = make_optimizer(model, train)
    runner = training_runner(model, group, train.compile)
    generator = torch.Generator().manual_seed(job["seed"])
    tokens_per_step = train.batch_size * train.block_size
    step = 0

    def one_step() -> int:
        nonlocal step
        batch = stream.batch(generator, train.batch_size, train.block_size)
        loss, grad_norm = train_step(runner, model, optimizer, batch, step, train, device, group, micro, accum)
        if not (loss == loss and grad_norm == grad_norm):  # NaN: the step skipped its update
            raise PicoError(f"{job['name']}: the bench training diverged (loss {loss}); lower train.lr")
        step += 1
        return tokens_per_step

    began = time.perf_counter()
    one_step()
    first_step = time.perf_counter() - began  # includes compilation when train.compile is on
    for _ in range(job["warmup_steps"] - 1):
        one_step()
    def peak() -> dict:
        # tokens/s counts every rank's rows, so MFU is against every rank's peak: this one's x ranks;
        # and against the peak of the dtype the matmuls run in (bf16 under autocast).
        measured = matmul_peak(train.dtype, job["peak_size"], device=device.type)
        return {**measured, "gflops": measured["gflops"] * group.world_size,
                "gflops_cpu": measured["gflops_cpu"] * group.world_size}

    rows = _timed_repeats(one_step, job["repeats"], job["min_seconds"], peak)
    step_seconds = tokens_per_step / statistics.median(r["rate"] for r in rows)
    optimizers = optimizer_cost(model, train, optimizer, step_seconds, job["repeats"])
    flops = model.flops_per_token(train.block_size)
    rss = [peak_rss_mb()]
    if group.world_size > 1:  # every rank's own peak, so the total a machine needs is known
        rss = [None] * group.world_size
        torch.distributed.all_gather_object(rss, peak_rss_mb())
    return _summary(rows, flops, {
        "params": model.num_params(), "flops_per_token": flops, "first_step_seconds": first_step,
        "peak_rss_mb": max(rss), "total_rss_mb": sum(rss), "processes": group.world_size,
        "threads": torch.get_num_threads(), "dtype": train.dtype, "compile": train.compile,
        "optimizer": train.optimizer, "step_ms": step_seconds * 1000, "optimizers": optimizers,
    })


def optimizer_cost(model, train: TrainParams, used, step_seconds: float, repeats: int) -> dict[str, dict]:
    """ms of one `optimizer.step()` alone, for AdamW and Muon (its Newton-Schulz iterations), on
    random gradients after the timed steps; `share`: of a step that used this optimizer (the
    measured step with its own optimizer's time swapped for this one's)."""
    gradients = torch.Generator().manual_seed(0)
    timings = {}
    # Muon updates hidden matrices only; a model without any (the one-hot k-gram) has nothing for it.
    names = ("adamw", "muon") if hidden_matrices(model) else ("adamw",)
    for name in names:
        optimizer = used if name == train.optimizer else make_optimizer(model, train.model_copy(update={"optimizer": name}))
        times = []
        for _ in range(max(repeats, 1) + 1):  # the first allocates the optimizer's state
            for param in model.parameters():
                if param.requires_grad:
                    param.grad = 1e-3 * torch.randn(param.shape, generator=gradients).to(param.device)
            sync(param.device)
            began = time.perf_counter()
            optimizer.step()
            sync(param.device)
            times.append(time.perf_counter() - began)
        timings[name] = statistics.median(times[1:])
    optimizer_free = max(step_seconds - timings[train.optimizer], 0.0)
    return {name: {"ms": seconds * 1000, "share": seconds / (optimizer_free + seconds)}
            for name, seconds in timings.items()}


def _summary(rows: list[dict], flops_per_token: float, extra: dict) -> dict:
    rate = statistics.median(r["rate"] for r in rows)
    mfu = statistics.median(r["rate"] * flops_per_token / 1e9 / r["peak_gflops"] for r in rows)
    mfu_cpu = statistics.median(r["rate_cpu"] / r["peak_gflops_cpu"] * flops_per_token / 1e9 for r in rows)
    return {
        **extra,
        "tokens_per_s": rate,
        "gflops": rate * flops_per_token / 1e9,
        "peak_gflops": statistics.median(r["peak_gflops"] for r in rows),
        "mfu": mfu,
        "mfu_cpu_time": mfu_cpu,
        "repeats": [{"tokens_per_s": r["rate"], "peak_gflops": r["peak_gflops"]} for r in rows],
    }


def lstm_speed(job: dict) -> dict:
    """torch.nn.LSTM alone at the LSTM model's size: forward + backward of a (batch, block) input."""

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    c = job["config"]
    torch.manual_seed(job["seed"])
    lstm = torch.nn.LSTM(c["d_embed"], c["hidden"], num_layers=c["n_layer"], batch_first=True)
    x = torch.randn(job["batch_size"], job["block_size"], c["d_embed"], requires_grad=True)

    def one_pass() -> int:
        out, _ = lstm(x)
        out.sum().backward()
        return job["batch_size"] * job["block_size"]

    for _ in range(job["warmup_steps"]):
        one_pass()
    weights = sum(p.numel() for name, p in lstm.named_parameters() if name.startswith("weight_"))
    peak = lambda: matmul_peak("float32", job["peak_size"])  # noqa: E731
    rows = _timed_repeats(one_pass, job["repeats"], job["min_seconds"], peak)
    return _summary(rows, 6.0 * weights, {"params": sum(p.numel() for p in lstm.parameters()), "flops_per_token": 6.0 * weights})


WORKERS = {"train": train_speed, "lstm": lstm_speed}


def run_job(job: dict, isolate: bool, nproc: int = 1) -> dict:
    """A worker job in a fresh interpreter (clean peak RSS, no state from earlier jobs) or here;
    with nproc > 1, in that many data-parallel processes under torchrun (gloo on CPU)."""
    if not isolate and nproc == 1:
        return WORKERS[job["kind"]](job)
    launcher = [sys.executable] if nproc == 1 else ["torchrun", "--standalone", f"--nproc_per_node={nproc}"]
    result = subprocess.run([*launcher, "-m", "picollm.bench.jobs", "worker", json.dumps(job)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        message = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit code {result.returncode}"
        raise PicoError(f"bench worker for {job.get('name', job['kind'])} failed: {message}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ decoding
DISPATCH_VOCAB = 64  # the dispatch twin's vocabulary: its head costs next to nothing


def dispatch_twin(model) -> LanguageModel | None:
    """The same transformer graph (layers, heads, norms, MLP kind, positions, context) at widths
    whose FLOPs are negligible, so its decode time per token is the per-op overhead alone; None
    for the other families."""
    if model.family != "transformer":
        return None
    c = model.config
    config = dataclasses.replace(c, vocab_size=DISPATCH_VOCAB, d_model=2 * c.n_head, d_ff=8, dropout=0.0)
    return type(model)(config).to(next(model.parameters()).device)


def _time_decode(model, prompt_ids: list[int], new_tokens: int, use_cache: bool) -> tuple[float, float]:
    """(seconds to the first token, seconds for all new_tokens) of one greedy decode, no eot."""
    began = time.perf_counter()
    tokens = generate(model, prompt_ids, max_new_tokens=new_tokens, sampling=GREEDY, use_cache=use_cache)
    next(tokens)
    first = time.perf_counter() - began
    for _ in tokens:  # no eot_id is given, so every decode runs to new_tokens
        pass
    return first, time.perf_counter() - began


def generation_speed(model, prompt_ids: list[int], new_tokens: int, repeats: int) -> dict:
    """Greedy decoding with and without the KV cache, and the time to the first token.

    The variants run interleaved in this one process (cache, no cache, dispatch twin, per
    repetition), so a change in the machine's load hits them alike and their ratio holds. The
    dispatch twin (`dispatch_twin`) decodes with the cache at negligible FLOPs: its ms per token
    is the per-token overhead; the rest of the cached ms per token is the model's arithmetic."""
    twin = dispatch_twin(model)
    variants = {"cache": (model, True), "no_cache": (model, False)}
    if twin is not None:
        variants["overhead"] = (twin, True)
    prompts = {"overhead": [t % DISPATCH_VOCAB for t in prompt_ids]}
    for key, (decoder, use_cache) in variants.items():  # warm-up: allocation, kernel selection
        _time_decode(decoder, prompts.get(key, prompt_ids), min(8, new_tokens), use_cache)
    firsts: dict[str, list[float]] = {key: [] for key in variants}
    totals: dict[str, list[float]] = {key: [] for key in variants}
    for _ in range(repeats):
        for key, (decoder, use_cache) in variants.items():
            first, total = _time_decode(decoder, prompts.get(key, prompt_ids), new_tokens, use_cache)
            firsts[key].append(first)
            totals[key].append(total)
    out: dict[str, Any] = {"new_tokens": new_tokens, "prompt_tokens": len(prompt_ids)}
    for key in ("cache", "no_cache"):
        out[f"{key}_tokens_per_s"] = new_tokens / statistics.median(totals[key])
        out[f"{key}_ms_per_token"] = statistics.median(totals[key]) / new_tokens * 1000
        out[f"{key}_first_token_ms"] = statistics.median(firsts[key]) * 1000
    # The ratio of each repetition's own pair: the interleaved timings share that moment's load.
    out["cache_speedup"] = statistics.median(n / c for n, c in zip(totals["no_cache"], totals["cache"]))
    if twin is not None:
        overhead = statistics.median(totals["overhead"]) / new_tokens * 1000
        out["overhead_ms_per_token"] = overhead
        out["arithmetic_ms_per_token"] = max(out["cache_ms_per_token"] - overhead, 0.0)
        out["overhead_share"] = min(overhead / out["cache_ms_per_token"], 1.0)
    return out


# ------------------------------------------------------------------------------------ data path
def tokenizer_speed(tokenizer, texts: list[str], threads: int, repeats: int, min_seconds: float) -> dict:
    """Encode throughput (MB/s of UTF-8 input) of the token cache's `encode_stream`.

    Also on one thread, and tiktoken's own `encode_ordinary_batch` (one task per document, ids
    as lists) on `threads`, for comparison; `mb_per_cpu_s` divides by the process's CPU time instead of the
    wall clock, which a busy machine moves much less. A repetition encodes the texts again until
    `min_seconds` have passed: one pass over a megabyte is too short to time on its own.
    """
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    encode_stream(tokenizer, texts[:256], threads)  # warm-up (regex compilation, caches, threads)
    variants = {
        "mb_per_s": lambda: encode_stream(tokenizer, texts, threads),
        "mb_per_s_1_thread": lambda: encode_stream(tokenizer, texts, 1),
        "tiktoken_batch_mb_per_s": lambda: tokenizer.encode_batch(texts, threads=threads),
    }
    out: dict[str, Any] = {"megabytes": megabytes, "threads": threads}
    cpu_rates = []
    for label, encode in variants.items():
        rates = []
        for _ in range(repeats):
            passes, elapsed, cpu = _run_for(_calls(encode), min_seconds)
            rates.append(megabytes * passes / elapsed)
            if label == "mb_per_s":
                cpu_rates.append(megabytes * passes / max(cpu, 1e-3))
        out[label] = statistics.median(rates)
    out["mb_per_cpu_s"] = statistics.median(cpu_rates)
    return out


def loader_speed(stream, batch_size: int, block_size: int, repeats: int, min_seconds: float) -> dict:
    """`TokenStream.batch` draws per second: random crops gathered straight from the memmap."""

    generator = torch.Generator().manual_seed(0)
    for _ in range(10):
        stream.batch(generator, batch_size, block_size)
    rates = []
    for _ in range(repeats):
        count, elapsed, _ = _run_for(_calls(lambda: stream.batch(generator, batch_size, block_size)), min_seconds)
        rates.append(count / elapsed)
    rate = statistics.median(rates)
    return {"batches_per_s": rate, "tokens_per_s": rate * batch_size * block_size, "batch_size": batch_size,
            "block_size": block_size}


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[0] == "worker":
        job = json.loads(argv[1])
        result = WORKERS[job["kind"]](job)
        if os.environ.get("RANK", "0") == "0":  # under torchrun, one line from rank 0 only
            print(json.dumps(result))
        return
    raise SystemExit("usage: python -m picollm.bench.jobs worker JOB_JSON (the stage is `python -m stages.bench`)")


if __name__ == "__main__":
    main(sys.argv[1:])
