"""Stage `bench`: how close training and decoding get to this machine's hardware.

Every rate is set against the machine's own matrix-multiply peak, measured in the same process
right before it (square torch.mm, median of repeats, the training's thread count), because on a
shared CPU absolute numbers move with the load while the ratio is what the code controls:

- training, per model of `models:` at the bench size (`bench.sizes` overrides each spec, the
  batch and block are `bench.batch_size`/`block_size`) and for the reference configuration (the
  `gpt2` preset shaped like nanoGPT's measured GPT): tokens/s of the loop's own `train_step`
  (forward, float32 cross-entropy, backward, clipping, fused AdamW) on batches from the loop's own
  `TokenStream.batch`; achieved GFLOP/s = `flops_per_token` x tokens/s; MFU = achieved / the fp32
  peak; the peak RSS of a subprocess that does nothing else (`bench.isolate`);
- bf16 autocast where the CPU computes bf16 natively (AVX512-BF16 / AMX; `bench.bfloat16`);
  elsewhere bf16 matmuls are emulated (0.02-0.07x the fp32 peak on an AVX2 EPYC), so they are
  only measured as a peak and reported as unsupported;
- torch.nn.LSTM alone at the LSTM's size (forward + backward), beside the LSTM model;
- decoding: greedy tokens/s with and without the KV cache, and the time to the first token;
- the tokenizer's batched encode MB/s and the data loader's batches/s.

Each timed repetition runs whole steps for at least `bench.min_seconds` after `warmup_steps`;
the medians of `bench.repeats` repetitions are reported (MFU: the median of the per-repetition
ratios). `python -m picollm.bench worker JOB` is the per-model subprocess.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from picollm.errors import PicoError

if TYPE_CHECKING:
    from picollm.config import Params

# Acceptance targets the report checks (fractions of the measured fp32 matmul peak, etc.).
REFERENCE_MFU = (0.70, 0.80)  # nanoGPT's GPT at the reference config, measured on these machines
TARGET_MFU = {"transformer": 0.60, "kgram": 0.40}
TARGET_BF16_SPEEDUP = 1.5
TARGET_TOKENIZER_MB_S = 20.0
TARGET_RSS_MB = 1536.0
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
REFERENCE_NAME = "gpt2@reference"


# ------------------------------------------------------------------------------------ checks
def bench_spec(params: "Params", name: str) -> dict[str, Any]:
    """models.<name> at the bench size: its spec with `bench.sizes[family]` applied."""
    spec = dict(params.model_spec(name))
    spec.update(params.bench.sizes.get(spec["family"], {}))
    return spec


def bench_models(params: "Params") -> list[str]:
    return list(params.bench.models) if params.bench.models is not None else list(params.models)


def check_bench(params: "Params") -> None:
    """Every model the bench times builds at the bench size; the decoded model exists."""
    from picollm.models.registry import model_config

    bench = params.bench
    for name in bench.models or []:
        if name not in params.models:
            raise PicoError(f"bench.models: {name!r} is not an entry of models:; defined: {sorted(params.models)}")
    if bench.generation.model not in params.models:
        raise PicoError(
            f"bench.generation.model={bench.generation.model!r} is not an entry of models:; defined: {sorted(params.models)}"
        )
    vocab = params.tokenizer.effective_vocab_size
    for name in bench_models(params):
        family = params.model_spec(name)["family"]
        model_config(bench_spec(params, name), vocab_size=vocab, block_size=bench.block_size, pad_id=0,
                     key=f"bench.sizes.{family} applied to models.{name}")
    if bench.reference is not None:
        model_config(bench.reference, vocab_size=bench.reference_vocab_size, block_size=bench.block_size, pad_id=0,
                     key="bench.reference")


# ------------------------------------------------------------------------------------ machine
def cpu_info() -> dict[str, Any]:
    """CPU model name and the flags that decide bf16 speed (Linux /proc/cpuinfo; empty elsewhere)."""
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return {"cpu": model or platform.processor() or platform.machine(), "flags": flags}


def bf16_support(device_type: str = "cpu") -> dict[str, Any]:
    """Whether bf16 matmuls run natively: CPU flags (AVX512-BF16, AMX) and oneDNN's own answer."""
    import torch

    if device_type == "cuda":
        native = bool(torch.cuda.is_bf16_supported())
        return {"native": native, "cpu_flags": [], "onednn_bf16": None}
    flags = cpu_info()["flags"]
    present = [flag for flag in BF16_CPU_FLAGS if flag in flags]
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn = None
    return {"native": bool(present) or bool(onednn), "cpu_flags": present, "onednn_bf16": onednn}


def matmul_peak(dtype_name: str = "float32", size: int = 1024, repeats: int = 5, cap_seconds: float = 3.0,
                device: str = "cpu") -> dict:
    """GFLOP/s of torch.mm on square matrices of side `size`: the median of `repeats` products.

    For other dtypes than fp32 a quick product at side 256 first estimates the rate; when `repeats`
    products at `size` would take longer than `cap_seconds` (an emulated dtype: bf16 without
    hardware support runs ~50x slower than fp32), the side is halved until they fit.
    """
    import torch

    dtype = getattr(torch, dtype_name)

    cpu_times: list[float] = []

    def timed(n: int, count: int, pick=statistics.median) -> float:
        a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
        torch.mm(a, b)  # warm-up: allocation, kernel selection, thread pool
        times = []
        cpu_times.clear()
        for _ in range(count):
            _sync(device)
            began, cpu_began = time.perf_counter(), time.process_time()
            torch.mm(a, b)
            _sync(device)
            times.append(time.perf_counter() - began)
            cpu_times.append(time.process_time() - cpu_began)
        return pick(times)

    n = size
    if dtype != torch.float32:  # fp32 is the reference: always at full size
        probe = min(256, size)
        rate = 2.0 * probe**3 / timed(probe, 3, min)
        while n > probe and 2.0 * n**3 / rate * (repeats + 1) > cap_seconds:
            n //= 2
    seconds = timed(n, repeats)
    return {"gflops": 2.0 * n**3 / seconds / 1e9, "size": n,
            "gflops_cpu": 2.0 * n**3 / max(statistics.median(cpu_times), 1e-9) / 1e9}


def _sync(device) -> None:
    """Wait for queued GPU work (a no-op on CPU, where every op has finished when it returns)."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def peak_rss_mb() -> float:
    """This process's peak resident set size (ru_maxrss: kB on Linux, bytes on macOS)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# ------------------------------------------------------------------------------------ training
def _timed_repeats(run_once: Callable[[], int], repeats: int, min_seconds: float, peak: Callable[[], dict]) -> list[dict]:
    """`repeats` x (peak measurement, then run_once() until min_seconds): units/s and the peak.

    Each rate is also taken per second of this process's CPU time (all its threads): on a busy
    machine that ratio moves much less than the wall-clock one, which is the one reported first."""
    rows = []
    for _ in range(repeats):
        measured = peak()
        units, began, cpu_began = 0, time.perf_counter(), time.process_time()
        while True:
            units += run_once()
            elapsed = time.perf_counter() - began
            if elapsed >= min_seconds:
                break
        cpu = time.process_time() - cpu_began
        rows.append({"rate": units / elapsed, "peak_gflops": measured["gflops"], "seconds": elapsed,
                     "rate_cpu": units / max(cpu, 1e-9), "peak_gflops_cpu": measured["gflops_cpu"]})
    return rows


def train_speed(job: dict) -> dict:
    """Time the training loop's own step for one model; the job is plain JSON (see `_train_job`)."""
    import torch

    from picollm.config import TrainParams
    from picollm.data.tokens import TokenStream
    from picollm.device import init_process_group, resolve_device
    from picollm.models.registry import build_model
    from picollm.train import _accumulation_steps, make_optimizer, train_step, training_runner

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    train = TrainParams.model_validate(job["train"])
    device = resolve_device(train.device, train.allow_device_fallback, announce=False)
    group = init_process_group(device)  # under torchrun: data-parallel, as train.nproc > 1 trains
    micro, accum = _accumulation_steps(train, group)
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
        # tokens/s counts every rank's rows, so MFU is against every rank's peak: this one's x ranks.
        measured = matmul_peak("float32", job["peak_size"], device=device.type)
        return {**measured, "gflops": measured["gflops"] * group.world_size,
                "gflops_cpu": measured["gflops_cpu"] * group.world_size}

    rows = _timed_repeats(one_step, job["repeats"], job["min_seconds"], peak)
    flops = model.flops_per_token(train.block_size)
    rss = [peak_rss_mb()]
    if group.world_size > 1:  # every rank's own peak, so the total a machine needs is known
        rss = [None] * group.world_size
        torch.distributed.all_gather_object(rss, peak_rss_mb())
    return _summary(rows, flops, {
        "params": model.num_params(), "flops_per_token": flops, "first_step_seconds": first_step,
        "peak_rss_mb": max(rss), "total_rss_mb": sum(rss), "processes": group.world_size,
        "threads": torch.get_num_threads(), "dtype": train.dtype, "compile": train.compile,
    })


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
    import torch

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
    result = subprocess.run([*launcher, "-m", "picollm.bench", "worker", json.dumps(job)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        message = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit code {result.returncode}"
        raise PicoError(f"bench worker for {job.get('name', job['kind'])} failed: {message}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ decoding
def generation_speed(model, prompt_ids: list[int], new_tokens: int, repeats: int) -> dict:
    """Greedy decoding, with and without the KV cache: tokens/s and the time to the first token."""
    from picollm.generation import generate
    from picollm.sampling import SamplingConfig

    greedy = SamplingConfig(greedy=True)
    out: dict[str, Any] = {"new_tokens": new_tokens, "prompt_tokens": len(prompt_ids)}
    for use_cache in (True, False):
        list(generate(model, prompt_ids, max_new_tokens=min(8, new_tokens), sampling=greedy, use_cache=use_cache))
        rates, firsts = [], []
        for _ in range(repeats):
            began = time.perf_counter()
            tokens = generate(model, prompt_ids, max_new_tokens=new_tokens, sampling=greedy, use_cache=use_cache)
            next(tokens)
            firsts.append(time.perf_counter() - began)
            count = 1 + sum(1 for _ in tokens)
            rates.append(count / (time.perf_counter() - began))
        key = "cache" if use_cache else "no_cache"
        out[f"{key}_tokens_per_s"] = statistics.median(rates)
        out[f"{key}_first_token_ms"] = statistics.median(firsts) * 1000
    out["cache_speedup"] = out["cache_tokens_per_s"] / out["no_cache_tokens_per_s"]
    return out


# ------------------------------------------------------------------------------------ data path
def tokenizer_speed(tokenizer, texts: list[str], threads: int, repeats: int) -> dict:
    """Batched encode throughput (MB/s of UTF-8 input) of the token cache's `encode_texts`.

    Also on one thread, and tiktoken's own `encode_ordinary_batch` (one task per document) on
    `threads`, for comparison; `mb_per_cpu_s` divides by the process's CPU time instead of the
    wall clock, which a busy machine moves much less.
    """
    import os

    from picollm.data.tokens import encode_texts

    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    encode_texts(tokenizer, texts[:256], threads)  # warm-up (regex compilation, caches, threads)
    variants = {
        "mb_per_s": lambda: encode_texts(tokenizer, texts, threads),
        "mb_per_s_1_thread": lambda: encode_texts(tokenizer, texts, 1),
        "tiktoken_batch_mb_per_s": lambda: tokenizer.encode_batch(texts, threads=threads),
    }
    out: dict[str, Any] = {"megabytes": megabytes, "threads": threads}
    cpu_rates = []
    for label, run in variants.items():
        times = []
        for _ in range(repeats):
            cpu, began = os.times(), time.perf_counter()
            run()
            times.append(time.perf_counter() - began)
            if label == "mb_per_s":
                after = os.times()
                cpu_rates.append(megabytes / max(after.user + after.system - cpu.user - cpu.system, 1e-3))
        out[label] = megabytes / statistics.median(times)
    out["mb_per_cpu_s"] = statistics.median(cpu_rates)
    return out


def loader_speed(stream, batch_size: int, block_size: int, repeats: int, min_seconds: float) -> dict:
    """`TokenStream.batch` draws per second: random crops gathered straight from the memmap."""
    import torch

    generator = torch.Generator().manual_seed(0)
    for _ in range(10):
        stream.batch(generator, batch_size, block_size)
    rates = []
    for _ in range(repeats):
        count, began = 0, time.perf_counter()
        while True:
            stream.batch(generator, batch_size, block_size)
            count += 1
            elapsed = time.perf_counter() - began
            if elapsed >= min_seconds:
                break
        rates.append(count / elapsed)
    rate = statistics.median(rates)
    return {"batches_per_s": rate, "tokens_per_s": rate * batch_size * block_size, "batch_size": batch_size,
            "block_size": block_size}


# ------------------------------------------------------------------------------------ the stage
def train_job(params: "Params", name: str, spec: dict, vocab_size: int, stream_vocab: int, pad_id: int, tokens: Path,
              dtype: str, compile_: bool = False, shape: tuple[int, int] | None = None, threads: int | None = None) -> dict:
    """The `train_speed` worker's job for models.<name> (or the train section) with `spec`:
    batch x block is `shape` (default: the bench size), threads default to bench.threads."""
    bench = params.bench
    batch_size, block_size = shape or (bench.batch_size, bench.block_size)
    base = params.model_train(name) if name in params.models else params.train
    train = base.merged({"batch_size": batch_size, "block_size": block_size, "micro_batch_size": 0,
                         "dtype": dtype, "compile": compile_})
    return {
        "kind": "train", "name": name, "spec": spec, "train": train.model_dump(), "vocab_size": vocab_size,
        "stream_vocab_size": stream_vocab, "pad_id": pad_id, "tokens": str(tokens), "seed": params.seed,
        "threads": threads if threads is not None else bench.threads or train.threads,
        "warmup_steps": bench.warmup_steps, "repeats": bench.repeats,
        "min_seconds": bench.min_seconds, "peak_size": bench.peak_size,
    }


def _family_variant(spec: dict) -> str:
    return spec.get("preset") or spec.get("variant") or spec["family"]


def run_bench(params: "Params", token_dir: Path, prepared_dir: Path, log: Callable[[str], None] = print) -> dict:
    """Every measurement of the stage, as the JSON document metrics/bench.json holds."""
    import torch

    from picollm import tokenizer as tokenizer_mod
    from picollm.data.prepare import read_split
    from picollm.data.tokens import TokenStream
    from picollm.device import resolve_device
    from picollm.io import read_json
    from picollm.models.registry import build_model

    bench = params.bench
    threads = bench.threads or params.train.threads
    if threads:
        torch.set_num_threads(threads)
    meta = read_json(token_dir / "meta.json")
    vocab, eot = meta["vocab_size"], meta["eot_id"]
    tokens = token_dir / "train.bin"
    began = time.perf_counter()

    device = resolve_device(params.train.device, params.train.allow_device_fallback, announce=False)
    support = bf16_support(device.type)
    do_bf16 = bench.bfloat16 == "always" or (bench.bfloat16 == "auto" and support["native"])
    peaks = {dtype: matmul_peak(dtype, bench.peak_size, device=device.type) for dtype in ("float32", "bfloat16")}
    info = cpu_info()
    out: dict[str, Any] = {
        "machine": {"cpu": info["cpu"], "device": device.type, "threads": torch.get_num_threads(), "torch": torch.__version__,
                    "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                    "bf16": {**support, "measured": do_bf16}},
        "peak_gflops": {k: v["gflops"] for k, v in peaks.items()},
        "peak_size": {k: v["size"] for k, v in peaks.items()},
        "bf16_peak_ratio": peaks["bfloat16"]["gflops"] / peaks["float32"]["gflops"],
        "settings": {"batch_size": bench.batch_size, "block_size": bench.block_size, "repeats": bench.repeats,
                     "min_seconds": bench.min_seconds, "warmup_steps": bench.warmup_steps,
                     "sizes": {k: dict(v) for k, v in bench.sizes.items()}},
        "train": {},
    }
    log(f"peak fp32 {peaks['float32']['gflops']:.1f} GFLOP/s, bf16 {peaks['bfloat16']['gflops']:.1f} GFLOP/s "
        f"(native bf16: {support['native']})")

    entries = [(name, bench_spec(params, name), vocab) for name in bench_models(params)]
    if bench.reference is not None:
        entries.append((REFERENCE_NAME, dict(bench.reference), bench.reference_vocab_size))
    for name, spec, model_vocab in entries:
        row: dict[str, Any] = {"family": spec["family"], "variant": _family_variant(spec), "spec": spec, "vocab_size": model_vocab}
        for dtype in ("float32", "bfloat16"):
            if dtype == "bfloat16" and not do_bf16:
                row[dtype] = {"skipped": "no native bf16 on this CPU (bf16 matmul runs at "
                                         f"{out['bf16_peak_ratio']:.3f}x the fp32 peak)"}
                continue
            job = train_job(params, name, spec, model_vocab, vocab, eot, tokens, dtype)
            row[dtype] = run_job(job, bench.isolate)
            log(f"{name} {dtype}: {row[dtype]['tokens_per_s']:.0f} tokens/s, MFU {row[dtype]['mfu']:.2f}")
        if "mfu" in row.get("bfloat16", {}):
            row["bf16_speedup"] = row["bfloat16"]["tokens_per_s"] / row["float32"]["tokens_per_s"]
        if spec["family"] == "lstm":
            row["torch_lstm"] = _torch_lstm(params, spec, model_vocab, threads)
            log(f"{name}: nn.LSTM alone {row['torch_lstm']['tokens_per_s']:.0f} tokens/s, MFU {row['torch_lstm']['mfu']:.2f}")
        out["train"][name] = row

    if bench.compile and bench.reference is not None:
        job = train_job(params, REFERENCE_NAME, dict(bench.reference), bench.reference_vocab_size, vocab, eot, tokens,
                         "float32", compile_=True)
        compiled = run_job(job, bench.isolate)
        eager = out["train"][REFERENCE_NAME]["float32"]
        out["compile"] = {"measured": True, "model": REFERENCE_NAME, "eager_tokens_per_s": eager["tokens_per_s"],
                          "compiled_tokens_per_s": compiled["tokens_per_s"], "eager_mfu": eager["mfu"],
                          "compiled_mfu": compiled["mfu"], "speedup_mfu": compiled["mfu"] / eager["mfu"],
                          "compile_seconds": compiled["first_step_seconds"]}
        log(f"compile: MFU {eager['mfu']:.2f} eager vs {compiled['mfu']:.2f} compiled")
    else:
        out["compile"] = {"measured": False}

    tok = tokenizer_mod.load(token_dir)
    gen = bench.generation
    torch.manual_seed(params.seed)
    prompt = tok.encode(params.evaluate.prompt) or [eot]
    spec = params.model_spec(gen.model)
    model = build_model(spec, vocab_size=vocab, block_size=len(prompt) + gen.new_tokens, pad_id=eot,
                        key=f"models.{gen.model}").to(device)
    out["generation"] = {"model": gen.model, **generation_speed(model, prompt, gen.new_tokens, gen.repeats)}
    log(f"decoding {gen.model}: {out['generation']['cache_speedup']:.1f}x faster with the KV cache")

    texts, size = [], 0
    for doc in read_split(prepared_dir, "train"):
        texts.append(doc.text)
        size += len(doc.text.encode("utf-8"))
        if size >= bench.tokenizer_mb * 1e6:
            break
    out["tokenizer"] = tokenizer_speed(tok, texts, params.tokenizer.encode_threads, bench.repeats)
    stream = TokenStream.open(tokens, vocab)
    out["loader"] = loader_speed(stream, bench.batch_size, bench.block_size, bench.repeats, min(bench.min_seconds, 0.25))
    out["checks"] = checks(out)
    out["seconds"] = time.perf_counter() - began
    return out


def _torch_lstm(params: "Params", spec: dict, vocab: int, threads: int) -> dict:
    from picollm.models.registry import model_config

    config = model_config(spec, vocab_size=vocab, block_size=params.bench.block_size, pad_id=0)
    bench = params.bench
    job = {"kind": "lstm", "name": "torch.nn.LSTM", "seed": params.seed, "threads": threads,
           "config": {"d_embed": config.d_embed, "hidden": config.hidden, "n_layer": config.n_layer},
           "batch_size": bench.batch_size, "block_size": bench.block_size, "warmup_steps": bench.warmup_steps,
           "repeats": bench.repeats, "min_seconds": bench.min_seconds, "peak_size": bench.peak_size}
    return run_job(job, bench.isolate)


def checks(out: dict) -> dict[str, dict]:
    """Each target of the issue, with the measured value and whether it is met."""
    result: dict[str, dict] = {}
    for name, row in out["train"].items():
        fp32 = row["float32"]
        if name == REFERENCE_NAME:
            result[f"{name} MFU"] = {"value": fp32["mfu"], "target": REFERENCE_MFU[0], "met": fp32["mfu"] >= REFERENCE_MFU[0]}
        elif row["family"] in TARGET_MFU:
            target = TARGET_MFU[row["family"]]
            result[f"{name} MFU"] = {"value": fp32["mfu"], "target": target, "met": fp32["mfu"] >= target}
        if "bf16_speedup" in row:
            result[f"{name} bf16 speedup"] = {"value": row["bf16_speedup"], "target": TARGET_BF16_SPEEDUP,
                                              "met": row["bf16_speedup"] >= TARGET_BF16_SPEEDUP}
        result[f"{name} peak RSS MB"] = {"value": fp32["peak_rss_mb"], "target": TARGET_RSS_MB,
                                         "met": fp32["peak_rss_mb"] <= TARGET_RSS_MB}
    mbs = out["tokenizer"]["mb_per_s"]
    result["tokenizer MB/s"] = {"value": mbs, "target": TARGET_TOKENIZER_MB_S, "met": mbs >= TARGET_TOKENIZER_MB_S}
    return result


# ------------------------------------------------------------------------------------ report
def _fmt_rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def markdown_report(out: dict) -> str:
    machine, peak = out["machine"], out["peak_gflops"]
    bf16 = machine["bf16"]
    native = "yes" if bf16["native"] else "no"
    lines = [
        f"Measured on {machine['cpu']} ({machine.get('cpu_capability', '?')}) with {machine['threads']} "
        f"thread{'s' if machine['threads'] != 1 else ''} "
        f"(torch {machine['torch']}). Matmul peak, "
        f"measured in each process right before its timings: **{peak['float32']:.1f} GFLOP/s fp32**, "
        f"{peak['bfloat16']:.1f} GFLOP/s bf16 ({out['bf16_peak_ratio']:.3f}x; native bf16: {native}). "
        "MFU = model FLOPs (`flops_per_token` x tokens/s) / the fp32 peak (also per second of the process's "
        "CPU time, which a busy machine moves less); medians of "
        f"{out['settings']['repeats']} repetitions; batch {out['settings']['batch_size']} x block "
        f"{out['settings']['block_size']}.",
        "",
        "| model | kind | params | tokens/s | GFLOP/s | MFU | MFU (CPU time) | target | bf16 | peak RSS |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in out["train"].items():
        fp32 = row["float32"]
        if name == REFERENCE_NAME:
            target = f">= {REFERENCE_MFU[0]:.2f}"
        else:
            target = f">= {TARGET_MFU[row['family']]:.2f}" if row["family"] in TARGET_MFU else "-"
        if "bf16_speedup" in row:
            bf16_cell = f"{row['bf16_speedup']:.2f}x (MFU {row['bfloat16']['mfu']:.2f})"
        else:
            bf16_cell = "n/a"
        lines.append(
            f"| {name} | {row['variant']} | {fp32['params']:,} | {_fmt_rate(fp32['tokens_per_s'])} | {fp32['gflops']:.1f} "
            f"| {fp32['mfu']:.2f} | {fp32['mfu_cpu_time']:.2f} | {target} | {bf16_cell} | {fp32['peak_rss_mb']:,.0f} MB |"
        )
        if "torch_lstm" in row:
            t = row["torch_lstm"]
            lines.append(f"| *torch.nn.LSTM alone* | fwd+bwd | {t['params']:,} | {_fmt_rate(t['tokens_per_s'])} | "
                         f"{t['gflops']:.1f} | {t['mfu']:.2f} | {t['mfu_cpu_time']:.2f} | - | | |")
    g, tok, loader = out["generation"], out["tokenizer"], out["loader"]
    lines += [
        "",
        f"- Decoding ({g['model']}, greedy, {g['new_tokens']} new tokens): {g['cache_tokens_per_s']:,.0f} tokens/s with the "
        f"KV cache, {g['no_cache_tokens_per_s']:,.0f} without: **{g['cache_speedup']:.1f}x**; first token after "
        f"{g['cache_first_token_ms']:.1f} ms (cache) / {g['no_cache_first_token_ms']:.1f} ms (no cache).",
        f"- Tokenizer (`encode_texts`, the token cache's encoder): **{tok['mb_per_s']:.1f} MB/s** batched on "
        f"{tok['threads']} threads ({tok['mb_per_s_1_thread']:.1f} MB/s on one, {tok['mb_per_cpu_s']:.1f} MB per CPU-second; "
        f"tiktoken's own batch encoder: {tok['tiktoken_batch_mb_per_s']:.1f} MB/s).",
        f"- Data loader (`TokenStream.batch`, {loader['batch_size']} x {loader['block_size']}): "
        f"{loader['batches_per_s']:,.0f} batches/s.",
    ]
    comp = out["compile"]
    if comp.get("measured"):
        lines.append(f"- torch.compile ({comp['model']}): MFU {comp['compiled_mfu']:.2f} compiled vs "
                     f"{comp['eager_mfu']:.2f} eager ({comp['speedup_mfu']:.2f}x) after {comp['compile_seconds']:.0f} s "
                     "of compilation.")
    unmet = [name for name, c in out["checks"].items() if not c["met"]]
    lines.append(f"- Targets met: {len(out['checks']) - len(unmet)}/{len(out['checks'])}"
                 + (f" (not met: {', '.join(unmet)})" if unmet else "") + ".")
    return "\n".join(lines) + "\n"


def plot_bench(out: dict, path: Path) -> None:
    """MFU per model (fp32, and bf16 where measured) against the targets; decoding with/without cache."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from picollm.io import atomic_open

    names = list(out["train"])
    fp32 = [out["train"][n]["float32"]["mfu"] for n in names]
    bf16 = [out["train"][n].get("bfloat16", {}).get("mfu") for n in names]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 1]})
    xs = range(len(names))
    width = 0.38 if any(v is not None for v in bf16) else 0.7
    ax.bar([x - (width / 2 if width < 0.5 else 0) for x in xs], fp32, width, label="fp32", color="#4C72B0")
    if width < 0.5:
        ax.bar([x + width / 2 for x in xs], [v or 0 for v in bf16], width, label="bf16 autocast", color="#DD8452")
    ax.axhspan(*REFERENCE_MFU, color="grey", alpha=0.15, label="nanoGPT reference band")
    for family, target in TARGET_MFU.items():
        ax.axhline(target, ls="--", lw=1, color="#C44E52" if family == "transformer" else "#55A868",
                   label=f"{family} target")
    ax.set_xticks(list(xs), names, rotation=30, ha="right")
    ax.set_ylabel(f"MFU (fp32 peak {out['peak_gflops']['float32']:.0f} GFLOP/s)")
    ax.set_ylim(0, max(1.15, max(fp32) * 1.25))
    ax.legend(fontsize=8, loc="upper left", ncol=4)
    ax.set_title("training step vs the measured matmul peak")
    g = out["generation"]
    ax2.bar(["KV cache", "no cache"], [g["cache_tokens_per_s"], g["no_cache_tokens_per_s"]], color=["#55A868", "#8172B3"])
    ax2.set_ylabel("tokens/s")
    ax2.set_title(f"decoding {g['model']} ({g['cache_speedup']:.1f}x)")
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[0] == "worker":
        job = json.loads(argv[1])
        result = WORKERS[job["kind"]](job)
        if os.environ.get("RANK", "0") == "0":  # under torchrun, one line from rank 0 only
            print(json.dumps(result))
        return
    raise SystemExit("usage: python -m picollm.bench worker JOB_JSON (the stage is `python -m stages.bench`)")


if __name__ == "__main__":
    main(sys.argv[1:])
