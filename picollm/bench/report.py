"""The bench's targets, its Markdown table and its figure."""

from __future__ import annotations

from pathlib import Path

from picollm.bench.plan import REFERENCE_NAME

# Acceptance targets the report checks (fractions of the measured fp32 matmul peak, etc.).
REFERENCE_MFU = (0.70, 0.80)  # nanoGPT's GPT at the reference config, measured on these machines
TARGET_MFU = {"transformer": 0.60, "kgram": 0.40}
TARGET_BF16_SPEEDUP = 1.5
TARGET_BF16_MFU = 0.60  # of the bf16 peak, for the Transformers where bf16 is native
TARGET_TOKENIZER_MB_S = 20.0
TARGET_RSS_MB = 1536.0
TARGET_CACHE_SPEEDUP = 5.0  # KV-cache decoding against recomputing the window, at bench.generation's length
TARGET_FIRST_TOKEN_MS = 5.0  # with the cache, after the model is loaded


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
            if row["family"] == "transformer":
                # The bf16 path at its best, eager or compiled (bench.compile), as a user would pick
                # with train.compile: compiling does not pay for every architecture (docs/performance.md).
                mfu = max(row[run]["mfu"] for run in ("bfloat16", "bfloat16_compiled") if run in row)
                result[f"{name} bf16 MFU"] = {"value": mfu, "target": TARGET_BF16_MFU, "met": mfu >= TARGET_BF16_MFU}
        result[f"{name} peak RSS MB"] = {"value": fp32["peak_rss_mb"], "target": TARGET_RSS_MB,
                                         "met": fp32["peak_rss_mb"] <= TARGET_RSS_MB}
    g = out["generation"]
    result["decode KV-cache speedup"] = {"value": g["cache_speedup"], "target": TARGET_CACHE_SPEEDUP,
                                         "met": g["cache_speedup"] >= TARGET_CACHE_SPEEDUP}
    result["decode first token ms"] = {"value": g["cache_first_token_ms"], "target": TARGET_FIRST_TOKEN_MS,
                                       "met": g["cache_first_token_ms"] <= TARGET_FIRST_TOKEN_MS}
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
        "MFU = model FLOPs (`flops_per_token` x tokens/s) / the peak of the dtype the matmuls run in (also per "
        "second of the process's CPU time, which a busy machine moves less); medians of "
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
            bf16_cell = f"{row['bf16_speedup']:.2f}x (MFU {row['bfloat16']['mfu']:.2f} of the bf16 peak"
            if "bfloat16_compiled" in row:
                bf16_cell += f"; compiled {row['bfloat16_compiled']['mfu']:.2f}"
            bf16_cell += ")"
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
        f"{g['cache_first_token_ms']:.1f} ms (cache) / {g['no_cache_first_token_ms']:.1f} ms (no cache)."
        + overhead_sentence(g),
        f"- Tokenizer (`encode_stream`, the token cache's encoder): **{tok['mb_per_s']:.1f} MB/s** batched on "
        f"{tok['threads']} threads ({tok['mb_per_s_1_thread']:.1f} MB/s on one, {tok['mb_per_cpu_s']:.1f} MB per CPU-second; "
        f"tiktoken's own batch encoder: {tok['tiktoken_batch_mb_per_s']:.1f} MB/s).",
        f"- Data loader (`TokenStream.batch`, {loader['batch_size']} x {loader['block_size']}): "
        f"{loader['batches_per_s']:,.0f} batches/s.",
    ]
    lines += optimizer_lines(out["train"])
    comp = out["compile"]
    if comp.get("measured"):
        lines.append(f"- torch.compile ({comp['model']}): MFU {comp['compiled_mfu']:.2f} compiled vs "
                     f"{comp['eager_mfu']:.2f} eager ({comp['speedup_mfu']:.2f}x); its first step took "
                     f"{comp['compile_seconds']:.0f} s (compiling, or loading torch's on-disk compile cache).")
    if comp.get("skipped"):
        lines.append(f"- torch.compile: not timed, {comp['skipped']}.")
    compiled_bf16 = [f"{name} {row['bfloat16_compiled']['mfu'] / row['bfloat16']['mfu']:.2f}x "
                     f"(first step {row['bfloat16_compiled']['first_step_seconds']:.0f} s)"
                     for name, row in out["train"].items() if "bfloat16_compiled" in row]
    if compiled_bf16:
        lines.append("- bf16 with torch.compile against eager bf16, MFU: " + "; ".join(compiled_bf16) + ".")
    unmet = [name for name, c in out["checks"].items() if not c["met"]]
    lines.append(f"- Targets met: {len(out['checks']) - len(unmet)}/{len(out['checks'])}"
                 + (f" (not met: {', '.join(unmet)})" if unmet else "") + ".")
    return "\n".join(lines) + "\n"


def optimizer_lines(train: dict) -> list[str]:
    """One line: each optimizer's step alone and its share of a training step, per model."""
    cells = []
    for name, row in train.items():
        optimizers = row["float32"].get("optimizers")
        if optimizers:
            cells.append(f"{name} " + " / ".join(f"{kind} {o['ms']:.1f} ms ({o['share']:.0%})" for kind, o in optimizers.items()))
    if not cells:
        return []
    return ["- Optimizer step alone, ms and share of a training step (AdamW / Muon, Muon's Newton-Schulz "
            "included): " + "; ".join(cells) + "."]


def overhead_sentence(g: dict) -> str:
    """The cached ms per token split into per-op overhead and arithmetic (transformers only)."""
    if "overhead_ms_per_token" not in g:
        return ""
    return (f" Per token with the cache: {g['cache_ms_per_token']:.2f} ms = {g['overhead_ms_per_token']:.2f} ms of "
            f"per-op overhead (the same graph at negligible width) + {g['arithmetic_ms_per_token']:.2f} ms of "
            f"arithmetic ({g['overhead_share']:.0%} overhead).")


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
