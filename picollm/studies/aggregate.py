"""A study's tidy table: every point's result collected by value, and the numbers its findings quote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from picollm.errors import PicoError
from picollm.io import read_json
from picollm.studies.plan import AXES, ROUND, check_study, point_metrics, point_timings, points

# ------------------------------------------------------------------------------ aggregation
ROW_FIELDS = ("steps", "batch_size", "block_size", "lr", "train_docs", "train_tokens", "params",
              "train_loss", "val_loss", "test_loss", "val_bpb")
TIMING_FIELDS = ("train_seconds", "tokens_per_second", "elapsed_seconds")


def _collect(params, sweep: str) -> list[tuple[dict, dict]]:
    """(metrics, timings) of every point params define, found by value among the point files."""
    axes = [name for name, _, _ in AXES[sweep]]
    found: dict[tuple, tuple[dict, Path]] = {}
    directory = point_metrics(sweep, "x").parent
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        doc = read_json(path)
        if isinstance(doc, dict) and doc.get("sweep") == sweep and all(a in doc for a in axes):
            found[tuple(doc[a] for a in axes)] = (doc, path)
    collected = []
    for point in points(params, sweep):
        entry = found.get(tuple(point[a] for a in axes))
        if entry is None:
            raise PicoError(f"sweep {sweep}: no results for the point {point} in {directory}; run `dvc repro` to train it")
        doc, path = entry
        collected.append((doc, read_json(point_timings(sweep, path.stem))))
    return collected


def _axis_fields(sweep: str) -> list[str]:
    return [name for name, _, _ in AXES[sweep] if name not in ROW_FIELDS]


def tidy_row(sweep: str, doc: dict) -> dict:
    return {"point": doc["point"], **{a: doc[a] for a in _axis_fields(sweep)}, **{f: doc[f] for f in ROW_FIELDS}}


def config_label(row: dict) -> str:
    """A hparam_grid point in words: `gptoss e128 b64 l2 h4 lr0.003 bs8`."""
    return (f"{row['model']} e{row['embed']} b{row['block_size']} l{row['layers']} h{row['heads']} "
            f"lr{row['lr']:g} bs{row['batch_size']}")


def aggregate(params, sweep: str) -> tuple[dict, dict]:
    """The sweep's tidy table (deterministic) and its timings table."""
    check_study(sweep)
    collected = _collect(params, sweep)
    rows = [tidy_row(sweep, doc) for doc, _ in collected]
    table: dict[str, Any] = {"sweep": sweep, "eval_docs": params.sweeps.eval_docs, "rows": rows,
                             "summary": summarize(sweep, rows, [doc for doc, _ in collected])}
    if sweep in ("training_budget", "overfitting"):
        table["curves"] = [
            {"model": doc["model"], "point": doc["point"], "steps": doc["steps"], "step": h["step"],
             "split": "train" if "train_loss" in h else ("test" if sweep == "overfitting" else "val"),
             "loss": h.get("train_loss", h.get("val_loss"))}
            for doc, _ in collected for h in doc["history"]
        ]
    if sweep == "overfitting":
        table["samples"] = [{"model": doc["model"], **s} for doc, _ in collected for s in doc["samples"]]
    timing_rows = [{"point": doc["point"], "model": doc["model"], **{a: doc[a] for a in _axis_fields(sweep)[1:]},
                    **{f: t[f] for f in TIMING_FIELDS}} for doc, t in collected]
    timings = {"sweep": sweep, "rows": timing_rows,
               "total_elapsed_seconds": round(sum(r["elapsed_seconds"] for r in timing_rows), 3)}
    return table, timings


def _by_model(rows: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["model"], []).append(row)
    return grouped


def summarize(sweep: str, rows: list[dict], docs: list[dict]) -> dict:
    """The numbers each finding sentence of the report is made from (scalars: `dvc metrics` shows them)."""
    summary: dict[str, Any] = {}
    if sweep == "corpus_size":
        for model, group in _by_model(rows).items():
            small, large = min(group, key=lambda r: r["docs"]), max(group, key=lambda r: r["docs"])
            summary[model] = {"docs_smallest": small["docs"], "docs_largest": large["docs"],
                              "val_loss_smallest": small["val_loss"], "val_loss_largest": large["val_loss"],
                              "train_loss_smallest": small["train_loss"], "train_loss_largest": large["train_loss"]}
    elif sweep == "training_budget":
        for model, group in _by_model(rows).items():
            short, long = min(group, key=lambda r: r["steps"]), max(group, key=lambda r: r["steps"])
            best = min(group, key=lambda r: (r["val_loss"], r["steps"]))
            summary[model] = {"steps_fewest": short["steps"], "steps_most": long["steps"],
                              "val_loss_fewest": short["val_loss"], "val_loss_most": long["val_loss"],
                              "train_loss_fewest": short["train_loss"], "train_loss_most": long["train_loss"],
                              "best_steps": best["steps"]}
    elif sweep == "overfitting":
        for doc in docs:
            test_curve = [(h["step"], h["val_loss"]) for h in doc["history"] if "val_loss" in h]
            best_step, best_test = min(test_curve, key=lambda item: (item[1], item[0])) if test_curve else (doc["steps"], doc["test_loss"])
            def mean(part: str, field: str, samples=doc["samples"]) -> float:
                values = [s[field] for s in samples if s["part"] == part]
                return round(sum(values) / len(values), 3) if values else 0.0

            summary[doc["model"]] = {
                "train_loss": doc["train_loss"], "test_loss": doc["test_loss"], "gap": round(doc["test_loss"] - doc["train_loss"], ROUND),
                "best_test_loss_logged": best_test, "best_test_step": best_step, "steps": doc["steps"],
                "last_test_loss_logged": test_curve[-1][1] if test_curve else doc["test_loss"],
                "overlap_words_train_prompts": mean("train", "longest_overlap_words"),
                "overlap_words_test_prompts": mean("test", "longest_overlap_words"),
                "source_match_words_train_prompts": mean("train", "source_match_words"),
                "source_match_words_test_prompts": mean("test", "source_match_words"),
                "reference_overlap_words": round(
                    sum(s["reference_overlap_words"] for s in doc["samples"]) / max(1, len(doc["samples"])), 3),
            }
    elif sweep == "hparam_grid":
        for model, group in _by_model(rows).items():
            best = min(group, key=lambda r: (r["val_loss"], r["point"]))
            summary[model] = {"best_point": best["point"], "best_config": config_label(best), "best_val_loss": best["val_loss"],
                              "worst_val_loss": max(r["val_loss"] for r in group)}
        best = min(rows, key=lambda r: (r["val_loss"], r["point"]))
        summary["best"] = {"point": best["point"], "config": config_label(best), "val_loss": best["val_loss"], "val_bpb": best["val_bpb"]}
    return summary
