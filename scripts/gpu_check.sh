#!/usr/bin/env bash
# The GPU profile, checked on a GPU in under 10 minutes: trains each reference preset (the `gpu`
# profile's models, GPT-2 vocabulary, 512-token context) for a few hundred steps with bf16
# autocast and torch.compile, reports tokens/s, the optimizer's share of a step and MFU against
# this GPU's measured bf16 matmul peak, checks that KV-cache decoding equals recomputation on
# CUDA, and sets the measured epoch time of TinyStories beside docs/scaling.md's estimate.
#
#   scripts/gpu_check.sh [--steps N] [--wheels DIR] [--out FILE] [--cpu-dry-run]
#
# Needs only PyTorch (a CUDA build); the project's other dependencies come from --wheels
# (made by scripts/gpu_wheels.sh). --cpu-dry-run runs every part on the CPU at tiny sizes and
# fp32, without compiling: it proves the script runs, not the GPU numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=300 wheels="" out="gpu_check.json" dry_run=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --steps) steps="$2"; shift 2 ;;
    --wheels) wheels="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --cpu-dry-run) dry_run=1; shift ;;
    *) echo "gpu_check.sh: unknown argument '$1'; allowed: --steps N, --wheels DIR, --out FILE, --cpu-dry-run" >&2; exit 2 ;;
  esac
done
if ! [[ "$steps" =~ ^[0-9]+$ ]] || (( steps < 2 )); then
  echo "gpu_check.sh: --steps '$steps' is not allowed; it must be an integer >= 2" >&2; exit 2
fi
if [[ -n "$wheels" ]]; then
  [[ -d "$wheels" ]] || { echo "gpu_check.sh: --wheels folder '$wheels' does not exist; make it with scripts/gpu_wheels.sh" >&2; exit 2; }
  python -m pip install --quiet --no-index --find-links "$wheels" "$wheels"/*.whl
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
STEPS="$steps" OUT="$out" DRY_RUN="$dry_run" exec python - <<'PY'
import json, os, re, statistics, sys, time
from pathlib import Path

import torch
import torch.nn.functional as F

from picollm.bench.machine import matmul_peak, sync
from picollm.config import TrainParams
from picollm.generation import generate
from picollm.models.registry import build_model
from picollm.optim import make_optimizer
from picollm.sampling import SamplingConfig

STEPS, OUT, DRY = int(os.environ["STEPS"]), Path(os.environ["OUT"]), os.environ["DRY_RUN"] == "1"
PRESETS = {"mingpt": "minGPT", "gpt2": "GPT-2 small style", "gptoss": "GPT-oss style", "llama3lite": "Llama3-lite"}
EPOCH_TOKENS, DOCS_MFU = 470e6, 0.40  # docs/scaling.md's assumptions
if DRY:
    device, dtype, compile_, vocab, batch, block = "cpu", None, False, 512, 4, 32
    shrink = {"d_model": 32, "n_head": 2, "n_kv_head": 2, "n_layer": 1, "d_ff": 64}
else:
    if not torch.cuda.is_available():
        sys.exit("gpu_check.sh: torch.cuda.is_available() is False; this needs a CUDA GPU and a CUDA build of "
                 "PyTorch (use --cpu-dry-run to test the script on a CPU)")
    device, dtype, compile_, vocab, batch, block, shrink = "cuda", torch.bfloat16, True, 50257, 64, 512, {}
    torch.backends.cuda.matmul.allow_tf32 = True

peak = matmul_peak("bfloat16" if dtype else "float32", 256 if DRY else 8192, device=device)["gflops"]
print(f"matmul peak ({'fp32, dry run' if DRY else 'bf16'}): {peak:,.0f} GFLOP/s", flush=True)
docs = Path("docs/scaling.md").read_text()
result = {"device": torch.cuda.get_device_name() if not DRY else "cpu (dry run)", "torch": torch.__version__,
          "dry_run": DRY, "peak_gflops": peak, "steps": STEPS, "batch": batch, "block": block, "presets": {}}


def timed(fn):
    sync(device)
    began = time.perf_counter()
    value = fn()
    sync(device)
    return value, time.perf_counter() - began


for preset, docs_name in PRESETS.items():
    torch.manual_seed(0)
    model = build_model({"family": "transformer", "preset": preset, **shrink}, vocab_size=vocab, block_size=block,
                        pad_id=0).to(device)
    train = TrainParams(batch_size=batch, block_size=block, micro_batch_size=0, dtype="bfloat16" if dtype else "float32",
                        compile=compile_, device=device)
    optimizer = make_optimizer(model, train)
    runner = torch.compile(model) if compile_ else model
    data = torch.Generator(device=device).manual_seed(0)

    def forward_backward():
        idx = torch.randint(0, vocab, (batch, block + 1), device=device, generator=data)
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            logits = runner(idx[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), idx[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        return loss

    warmup = max(1, min(10, STEPS // 5))
    step_times, optim_times, losses = [], [], []
    for step in range(STEPS):
        loss, seconds = timed(forward_backward)
        _, optim_seconds = timed(lambda: (optimizer.step(), optimizer.zero_grad(set_to_none=True)))
        losses.append(float(loss.detach()))
        if step >= warmup:
            step_times.append(seconds + optim_seconds)
            optim_times.append(optim_seconds)
    step_s = statistics.median(step_times)
    tokens_per_s = batch * block / step_s
    flops = model.flops_per_token(block)
    row = {"params": model.num_params(), "gflop_per_token": flops / 1e9, "tokens_per_s": tokens_per_s,
           "mfu": tokens_per_s * flops / 1e9 / peak, "optimizer_share": statistics.median(optim_times) / step_s,
           "first_loss": losses[0], "last_loss": losses[-1], "epoch_minutes": EPOCH_TOKENS / tokens_per_s / 60}
    # The docs' table row for this preset: params, GFLOP/token, then the epoch times.
    match = re.search(rf"^\| {re.escape(docs_name)} \| ([\d.]+)M \| ([\d.]+) \|", docs, re.M)
    if match and not DRY:
        row["docs_gflop_per_token"] = float(match.group(2))
        row["docs_epoch_minutes_at_40pct"] = EPOCH_TOKENS * flops / (DOCS_MFU * peak * 1e9) / 60
        row["flops_match_docs"] = abs(row["gflop_per_token"] - float(match.group(2))) <= 0.0015
    elif not match:
        sys.exit(f"gpu_check.sh: docs/scaling.md has no table row for '{docs_name}'; the epoch estimate cannot be checked")

    # KV-cache decoding equals recomputation on this device: greedy and sampled, past max_context.
    model.eval()
    prompt = list(range(1, 9))
    decode = {}
    for label, sampling in (("greedy", SamplingConfig(greedy=True)), ("sampled", SamplingConfig(top_p=0.9))):
        runs = [list(generate(model, prompt, max_new_tokens=min(block + 8, 64) if DRY else 64, sampling=sampling,
                              generator=torch.Generator(device=device).manual_seed(1), use_cache=use_cache))
                for use_cache in (True, False)]
        decode[label] = runs[0] == runs[1]
    row["kv_cache_equals_recompute"] = decode
    result["presets"][preset] = row
    print(f"{preset}: {tokens_per_s:,.0f} tokens/s, MFU {row['mfu']:.2f}, optimizer {row['optimizer_share']:.0%} of a "
          f"step, loss {losses[0]:.2f} -> {losses[-1]:.2f}, epoch {row['epoch_minutes']:.1f} min, cache == recompute: "
          f"{decode}", flush=True)
    del model, optimizer, runner
    if device == "cuda":
        torch.cuda.empty_cache()

tmp = OUT.with_name(OUT.name + ".tmp")
tmp.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
tmp.replace(OUT)
failed = [p for p, r in result["presets"].items() if not all(r["kv_cache_equals_recompute"].values())]
print(f"wrote {OUT}" + (f"; KV cache differs from recomputation for {failed}" if failed else ""))
sys.exit(1 if failed else 0)
PY
