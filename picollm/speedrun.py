"""The speedrun (stage `speedrun`): how soon the default recipe reaches a target loss, against nanoGPT's.

The default recipe's side is read from the model's own training snapshots (train@<model> with
`train.snapshots`); the nanoGPT recipe (AdamW on every weight, random crops, `speedrun.baseline`)
is trained here on the same data and model, keeping snapshots at the same steps, for
`speedrun.baseline_budget` times the model's steps, its schedule stretched over them: a target that
the default recipe reaches late in its run may lie past the end of nanoGPT's at the same budget.
Every snapshot of both is scored on the same validation stories in bits per byte, and each side
reports the first snapshot at or below the target, `target_floor_ratio` x the entropy floor. A
side that never gets there reports none: the comparison is then a bound, said as such. Always
defined besides: the tokens the recipe needs to match nanoGPT's final loss (interpolated linearly
between snapshots), as a share of nanoGPT's budget. In seconds: both recipes' training speeds,
timed side by side on fresh models (`training_rates`), go to the stage's timings file.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path

import torch

from picollm.checkpoint import load_checkpoint
from picollm.config import TrainParams
from picollm.data.tokens import TokenStream
from picollm.device import init_process_group, resolve_device
from picollm.evaluate import token_nll
from picollm.figures import pyplot, save_png
from picollm.models.loading import load_model
from picollm.models.registry import build_model
from picollm.optim import make_optimizer
from picollm.tokenizer import Tokenizer
from picollm.train import accumulation_steps, draw_batch, story_starts, train_step, training_runner

ROUND = 6
RATE_STEPS = 8  # timed steps per recipe, after one untimed (allocation, kernel selection)


def snapshot_bpb(snapshots: list[Path], stream: TokenStream, stream_bytes: int, tok: Tokenizer, block_size: int) -> list[dict]:
    """(step, tokens, val bpb) of every snapshot, scored on `stream` (every token once, given its own document)."""
    rows = []
    for path in snapshots:
        payload = load_checkpoint(path, tokenizer_identity=tok.identity)
        nll = token_nll(load_model(path, tok), stream, block_size, tok.eot_id)
        rows.append({"step": int(payload["step"]), "tokens": int(payload["tokens_seen"]),
                     "val_bpb": round(float(nll.sum()) / math.log(2) / stream_bytes, ROUND)})
    return rows


def first_at_target(rows: list[dict], target_bpb: float) -> dict | None:
    return next((row for row in rows if row["val_bpb"] <= target_bpb), None)


def tokens_to_reach(rows: list[dict], target_bpb: float) -> float | None:
    """Where a curve first gets down to `target_bpb`, interpolated linearly between snapshots."""
    previous = None
    for row in rows:
        if row["val_bpb"] <= target_bpb:
            if previous is None:
                return float(row["tokens"])
            fraction = (previous["val_bpb"] - target_bpb) / (previous["val_bpb"] - row["val_bpb"])
            return previous["tokens"] + fraction * (row["tokens"] - previous["tokens"])
        previous = row
    return None


def speedrun_summary(recipe: list[dict], baseline: list[dict], floor_bpb: float, ratio: float) -> dict:
    """Tokens to reach the target for both recipes, and their ratio (or a bound on it)."""
    target = round(ratio * floor_bpb, ROUND)
    sides = {}
    for name, rows in (("recipe", recipe), ("nanogpt", baseline)):
        hit = first_at_target(rows, target)
        sides[name] = {
            "curve": rows,
            "tokens_to_target": hit["tokens"] if hit else None,
            "best_val_bpb": min(row["val_bpb"] for row in rows),
        }
    recipe_tokens, baseline_tokens = sides["recipe"]["tokens_to_target"], sides["nanogpt"]["tokens_to_target"]
    budget = max(row["tokens"] for row in baseline)
    if recipe_tokens and baseline_tokens:
        token_ratio, bound = round(recipe_tokens / baseline_tokens, 4), "exact"
    elif recipe_tokens:  # the baseline needs more than its whole budget
        token_ratio, bound = round(recipe_tokens / budget, 4), "at most"
    else:
        token_ratio, bound = None, "not reached"
    # The other way round, always defined: the tokens the recipe needs to match nanoGPT's final loss.
    final = baseline[-1]
    matched = tokens_to_reach(recipe, final["val_bpb"])
    match = {"nanogpt_final_tokens": final["tokens"], "nanogpt_final_val_bpb": final["val_bpb"],
             "recipe_tokens": round(matched) if matched is not None else None,
             "token_ratio": round(matched / final["tokens"], 4) if matched is not None else None}
    return {"target_floor_ratio": ratio, "target_bpb": target, "token_ratio": token_ratio, "token_ratio_is": bound,
            "match_nanogpt_final": match, **sides}


def plot_speedrun(summary: dict, floor_bpb: float, path: Path, model: str) -> None:
    """Val bpb against training tokens for both recipes, with the target and the floor."""
    plt, sns = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for side, label in (("recipe", "default recipe"), ("nanogpt", "nanoGPT recipe (AdamW, random crops)")):
        curve = summary[side]["curve"]
        ax.plot([row["tokens"] / 1e6 for row in curve], [row["val_bpb"] for row in curve], marker="o", label=label)
    ax.axhline(summary["target_bpb"], color="black", linestyle="--", linewidth=1,
               label=f"target: {summary['target_floor_ratio']:g} x the entropy floor")
    ax.axhline(floor_bpb, color="grey", linestyle=":", linewidth=1, label="entropy floor")
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("val bits per byte")
    ax.set_title(f"Speedrun: {model} to {summary['target_bpb']:.3f} bpb")
    ax.legend(fontsize=8)
    save_png(fig, path)


def training_rates(recipes: Mapping[str, TrainParams], spec: Mapping, stream: TokenStream, vocab_size: int, eot_id: int,
                   seed: int, steps: int = RATE_STEPS) -> dict[str, float]:
    """Training tokens per second of each recipe on the same model and data, measured side by side:
    a fresh model per recipe, their steps interleaved in this one process, so that the machine's
    load at the moment hits them alike and only their ratio is quoted (docs/performance.md)."""
    runs = {}
    for name, train in recipes.items():
        device = resolve_device(train.device, train.allow_device_fallback, announce=False)
        group = init_process_group(device)
        torch.manual_seed(seed)
        model = build_model(spec, vocab_size=vocab_size, block_size=train.block_size, pad_id=eot_id).to(device)
        starts = story_starts(stream, eot_id, train.block_size) if train.crop == "story" else None
        runs[name] = dict(train=train, device=device, group=group, model=model, optimizer=make_optimizer(model, train),
                          runner=training_runner(model, group, train.compile), starts=starts,
                          generator=torch.Generator().manual_seed(seed), split=accumulation_steps(train, group), seconds=0.0)
    for step in range(steps + 1):
        for run in runs.values():
            train = run["train"]
            batch = draw_batch(stream, run["generator"], train, run["starts"])
            began = time.perf_counter()
            train_step(run["runner"], run["model"], run["optimizer"], batch, step, train, run["device"], run["group"], *run["split"])
            if step:
                run["seconds"] += time.perf_counter() - began
    return {name: steps * run["train"].batch_size * run["train"].block_size / max(run["seconds"], 1e-9)
            for name, run in runs.items()}
