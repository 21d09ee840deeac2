"""How the cost of training grows on this machine: time per step and peak memory against model
size, context length and process count.

    dvc repro tokenize && picollm scaling   # ~2 min; writes reports/scaling.{json,md}

Every point times the training loop's own `train_step` in a fresh process (the bench's worker,
`picollm.bench.train_speed`), so peak RSS is that run's alone; the process-count points run the
same worker under torchrun (gloo on CPU). Each point is set against the fp32 matmul peak measured
in its own process, so the table reads as ratios even on a busy machine. The base model is the
default `gptoss` entry of params.yaml; one axis varies at a time:

- size: d_model (heads of 32, d_ff = 3 x d_model, the default's 4 blocks), batch 8 x 256;
- context: block size at a constant 2,048 tokens per step (attention's share grows with it);
- processes: the same global batch (8 x 256) on 1 process x 2 threads or 2 processes x 1 thread.

It is a measurement to read, not a pipeline stage: `dvc repro` stays within its time budget, and
its timings would make no cached output reproducible anyway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from picollm import paths
from picollm.bench.jobs import run_job
from picollm.bench.run import train_job
from picollm.errors import PicoError
from picollm.io import read_json, replace_marked_block, write_json, write_text

REPORT_JSON = paths.REPORTS_DIR / "scaling.json"
REPORT_MD = paths.REPORTS_DIR / "scaling.md"
BASE_MODEL = "gptoss"
SIZES = (64, 128, 256, 384)
CONTEXTS = (64, 128, 256, 512, 1024)
TOKENS_PER_STEP = 2048


def _job(params, spec: dict, batch_size: int, block_size: int, threads: int) -> dict:
    meta = read_json(paths.TOKENS_META)
    return train_job(params, BASE_MODEL, spec, meta["vocab_size"], meta["vocab_size"], meta["eot_id"],
                     paths.TOKENS_DIR / "train.bin", "float32", shape=(batch_size, block_size), threads=threads)


def _row(axis: str, value: Any, result: dict, tokens_per_step: int) -> dict:
    return {
        "axis": axis, "value": value, "params": result["params"], "processes": result["processes"],
        "threads": result["threads"], "seconds_per_step": tokens_per_step / result["tokens_per_s"],
        "tokens_per_s": result["tokens_per_s"], "mfu": result["mfu"], "peak_gflops": result["peak_gflops"],
        "peak_rss_mb": result["peak_rss_mb"], "total_rss_mb": result["total_rss_mb"],
    }


def measure(params, log=print) -> list[dict]:
    base = dict(params.model_spec(BASE_MODEL))
    rows = []
    for d_model in SIZES:
        spec = {**base, "d_model": d_model, "n_head": max(1, d_model // 32), "n_kv_head": max(1, d_model // 32), "d_ff": 3 * d_model}
        rows.append(_row("d_model", d_model, run_job(_job(params, spec, 8, 256, 0), isolate=True), 8 * 256))
        log(f"d_model {d_model}: {rows[-1]['seconds_per_step'] * 1e3:.0f} ms/step")
    for block in CONTEXTS:
        batch = TOKENS_PER_STEP // block
        rows.append(_row("context", block, run_job(_job(params, base, batch, block, 0), isolate=True), batch * block))
        log(f"context {block}: {rows[-1]['seconds_per_step'] * 1e3:.0f} ms/step")
    for nproc, threads in ((1, 2), (2, 1)):
        rows.append(_row("processes", nproc, run_job(_job(params, base, 8, 256, threads), isolate=True, nproc=nproc), 8 * 256))
        log(f"{nproc} process(es) x {threads} thread(s): {rows[-1]['seconds_per_step'] * 1e3:.0f} ms/step")
    return rows


def markdown(rows: list[dict]) -> str:
    titles = {"d_model": "Model size (d_model; batch 8 x 256)", "context": f"Context length ({TOKENS_PER_STEP:,} tokens per step)",
              "processes": "Process count (global batch 8 x 256, 2 cores)"}
    lines = []
    for axis, title in titles.items():
        part = [r for r in rows if r["axis"] == axis]
        first = part[0]
        lines += [f"**{title}**", "",
                  "| value | params | ms/step | x first | tokens/s | MFU | peak RSS / process | total RSS |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in part:
            lines.append(
                f"| {r['value']} | {r['params']:,} | {r['seconds_per_step'] * 1e3:.0f} | "
                f"{r['seconds_per_step'] / first['seconds_per_step']:.2f} | {r['tokens_per_s']:,.0f} | {r['mfu']:.2f} | "
                f"{r['peak_rss_mb']:,.0f} MB | {r['total_rss_mb']:,.0f} MB |")
        lines.append("")
    return "\n".join(lines)


def run_scaling(params, write_docs: bool) -> str:
    """Measure every point, write reports/scaling.{json,md} (and docs/scaling.md's table); the table."""
    if not paths.TOKENS_META.exists():
        raise PicoError(f"{paths.TOKENS_META} is missing: run `dvc repro tokenize` first")
    rows = measure(params)
    write_json(REPORT_JSON, {"base_model": BASE_MODEL, "rows": rows})
    table = markdown(rows)
    write_text(REPORT_MD, "# Cost growth (picollm scaling)\n\n" + table)
    if write_docs:
        replace_marked_block(Path("docs/scaling.md"), table, marker="scaling")
    return table
