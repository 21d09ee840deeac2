"""Stage `bench`: how close training and decoding get to this machine's hardware.

Every rate is set against the machine's own matrix-multiply peak, measured in the same process
right before it (square torch.mm, median of repeats, the training's thread count), because on a
shared CPU absolute numbers move with the load while the ratio is what the code controls:

- training, per model of `models:` at the bench size (`bench.sizes` overrides each spec, the
  batch and block are `bench.batch_size`/`block_size`) and for the reference configuration (the
  `gpt2` preset shaped like nanoGPT's measured GPT): tokens/s of the loop's own `train_step`
  (forward, float32 cross-entropy, backward, clipping, fused AdamW) on batches from the loop's own
  `TokenStream.batch`; achieved GFLOP/s = `flops_per_token` x tokens/s; MFU = achieved / the
  peak of the dtype the matmuls run in; the peak RSS from the job's start (a subprocess of its own with `bench.isolate`);
- bf16 autocast where the CPU computes bf16 natively (AVX512-BF16 / AMX; `bench.bfloat16`);
  elsewhere bf16 matmuls are emulated (0.02-0.07x the fp32 peak on an AVX2 EPYC), so they are
  only measured as a peak and reported as unsupported;
- torch.nn.LSTM alone at the LSTM's size (forward + backward), beside the LSTM model;
- decoding: greedy tokens/s with and without the KV cache, and the time to the first token;
- the tokenizer's batched encode MB/s and the data loader's batches/s.

Each timed repetition runs whole steps for at least `bench.min_seconds` after `warmup_steps`;
the medians of `bench.repeats` repetitions are reported (MFU: the median of the per-repetition
ratios). `python -m picollm.bench.run worker JOB` is the per-model subprocess.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from picollm.bench.jobs import generation_speed, loader_speed, run_job, tokenizer_speed
from picollm.bench.machine import bf16_support, cpu_info, matmul_peak
from picollm.bench.plan import REFERENCE_NAME, bench_models, bench_spec
from picollm.bench.report import checks
from picollm.config import Params, TrainParams
from picollm.data.stories import generate_stories
from picollm.data.tokens import TokenStream, write_token_cache
from picollm.device import compile_unavailable, resolve_device
from picollm.models.registry import build_model, model_config
from picollm.tokenizer import Tokenizer
from picollm.tokenizer import build as build_tokenizer

BENCH_SEED = 0  # the bench's text, weights and batches; its own, so the pipeline's `seed` does not rerun it


def train_job(params: Params, name: str, spec: dict, vocab_size: int, stream_vocab: int, pad_id: int, tokens: Path,
              dtype: str, compile_: bool = False, shape: tuple[int, int] | None = None, threads: int | None = None) -> dict:
    """The `train_speed` worker's job for the architecture `spec`: the bench's training settings
    (`bench.optimizer`, `bench.device`), batch x block `shape` (default: the bench size)."""
    bench = params.bench
    batch_size, block_size = shape or (bench.batch_size, bench.block_size)
    train = TrainParams(batch_size=batch_size, block_size=block_size, micro_batch_size=0, dtype=dtype, compile=compile_,
                        optimizer=bench.optimizer, device=bench.device)
    return {
        "kind": "train", "name": name, "spec": spec, "train": train.model_dump(), "vocab_size": vocab_size,
        "stream_vocab_size": stream_vocab, "pad_id": pad_id, "tokens": str(tokens), "seed": BENCH_SEED,
        "threads": threads if threads is not None else bench.threads,
        "warmup_steps": bench.warmup_steps, "repeats": bench.repeats,
        "min_seconds": bench.min_seconds, "peak_size": bench.peak_size,
    }


def bench_corpus(params: Params, directory: Path) -> tuple[list[str], Tokenizer, Path]:
    """The bench's own inputs, independent of the pipeline's corpus: generated stories of about
    `bench.tokenizer_mb` megabytes, a BPE tokenizer of `bench.vocab_size` trained on them, and
    their token cache (the batches of every timed training step)."""
    texts, size = [], 0
    # Stories average well over 400 bytes, so this many always covers the size asked for.
    for story in generate_stories(int(params.bench.tokenizer_mb * 1e6 / 400) + 1, BENCH_SEED):
        texts.append(story.text)
        size += len(story.text.encode("utf-8"))
        if size >= params.bench.tokenizer_mb * 1e6:
            break
    tok = build_tokenizer("bpe", params.bench.vocab_size, texts)
    tokens = directory / "train.bin"
    write_token_cache(texts, tok, tokens, threads=params.tokenizer.encode_threads)
    return texts, tok, tokens


def family_variant(spec: dict) -> str:
    return spec.get("preset") or spec.get("variant") or spec["family"]


def run_bench(params: Params, workdir: Path, log: Callable[[str], None] = print) -> dict:
    """Every measurement of the stage, as the JSON document metrics/bench.json holds."""
    bench = params.bench
    if bench.threads:
        torch.set_num_threads(bench.threads)
    texts, tok, tokens = bench_corpus(params, workdir)
    vocab, eot = tok.vocab_size, tok.eot_id
    # First, in the state the tokenize stage runs in: after the training jobs the same process
    # gained far less from its second thread (docs/performance.md).
    tokenizer = tokenizer_speed(tok, texts, params.tokenizer.encode_threads, bench.repeats, bench.min_seconds)
    began = time.perf_counter()

    device = resolve_device(bench.device, False, announce=False)
    support = bf16_support(device.type)
    do_bf16 = bench.bfloat16 == "always" or (bench.bfloat16 == "auto" and support["native"])
    no_compile = compile_unavailable(device.type) if bench.compile else None
    if no_compile:
        log(f"bench.compile is on, but nothing is compiled: {no_compile}")
    do_compile = bench.compile and not no_compile
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
                     "optimizer": bench.optimizer, "vocab_size": vocab},
        "train": {},
    }
    log(f"peak fp32 {peaks['float32']['gflops']:.1f} GFLOP/s, bf16 {peaks['bfloat16']['gflops']:.1f} GFLOP/s "
        f"(native bf16: {support['native']})")

    entries = [(name, bench_spec(params, name), vocab) for name in bench_models(params)]
    if bench.reference is not None:
        entries.append((REFERENCE_NAME, dict(bench.reference), bench.reference_vocab_size))
    for name, spec, model_vocab in entries:
        row: dict[str, Any] = {"family": spec["family"], "variant": family_variant(spec), "spec": spec, "vocab_size": model_vocab}
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
            # Eager bf16 leaves a Transformer's elementwise ops (norms, RoPE, SwiGLU, residuals)
            # unfused, about a quarter of a step on a CPU; torch.compile fuses them.
            if do_compile and spec["family"] == "transformer" and name != REFERENCE_NAME:
                job = train_job(params, name, spec, model_vocab, vocab, eot, tokens, "bfloat16", compile_=True)
                row["bfloat16_compiled"] = run_job(job, bench.isolate)
                log(f"{name} bfloat16 compiled: MFU {row['bfloat16_compiled']['mfu']:.2f}")
        if spec["family"] == "lstm":
            row["torch_lstm"] = _torch_lstm(params, spec, model_vocab, bench.threads)
            log(f"{name}: nn.LSTM alone {row['torch_lstm']['tokens_per_s']:.0f} tokens/s, MFU {row['torch_lstm']['mfu']:.2f}")
        out["train"][name] = row

    if do_compile and bench.reference is not None:
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
        out["compile"] = {"measured": False, **({"skipped": no_compile} if no_compile else {})}

    gen = bench.generation
    torch.manual_seed(BENCH_SEED)
    prompt = tok.encode(gen.prompt) or [eot]
    model = build_model(bench_spec(params, gen.model), vocab_size=vocab, block_size=len(prompt) + gen.new_tokens, pad_id=eot,
                        key=f"bench.models.{gen.model}").to(device)
    out["generation"] = {"model": gen.model, **generation_speed(model, prompt, gen.new_tokens, gen.repeats)}
    log(f"decoding {gen.model}: {out['generation']['cache_speedup']:.1f}x faster with the KV cache")

    out["tokenizer"] = tokenizer
    stream = TokenStream.open(tokens, vocab)
    out["loader"] = loader_speed(stream, bench.batch_size, bench.block_size, bench.repeats, min(bench.min_seconds, 0.25))
    out["checks"] = checks(out)
    out["seconds"] = time.perf_counter() - began
    return out


def _torch_lstm(params: Params, spec: dict, vocab: int, threads: int) -> dict:
    config = model_config(spec, vocab_size=vocab, block_size=params.bench.block_size, pad_id=0)
    bench = params.bench
    job = {"kind": "lstm", "name": "torch.nn.LSTM", "seed": BENCH_SEED, "threads": threads,
           "config": {"d_embed": config.d_embed, "hidden": config.hidden, "n_layer": config.n_layer},
           "batch_size": bench.batch_size, "block_size": bench.block_size, "warmup_steps": bench.warmup_steps,
           "repeats": bench.repeats, "min_seconds": bench.min_seconds, "peak_size": bench.peak_size}
    return run_job(job, bench.isolate)
