"""A study's tidy table: every point's result collected by value, its noise runs, and the summary
its findings quote (picollm/studies/<study>.py computes the study-specific part)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from picollm.errors import PicoError
from picollm.io import read_json
from picollm.studies.base import noise_section
from picollm.studies.plan import axis_names, noise_metrics, noise_point, noise_timings, point_metrics, point_timings, points
from picollm.studies.registry import study as study_of

TIMING_FIELDS = ("train_seconds", "tokens_per_second", "elapsed_seconds")


def collect(params, study: str) -> list[tuple[dict, dict]]:
    """(metrics, timings) of every point params define, found by value among the point files."""
    axes = axis_names(study)
    found: dict[tuple, tuple[dict, Path]] = {}
    directory = point_metrics(study, "x").parent
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        doc = read_json(path)
        if isinstance(doc, dict) and doc.get("sweep") == study and doc.get("seed") == params.seed and all(a in doc for a in axes):
            found[tuple(doc[a] for a in axes)] = (doc, path)
    collected = []
    for point in points(params, study):
        entry = found.get(tuple(point[a] for a in axes))
        if entry is None:
            raise PicoError(f"study {study}: no results for the point {point} in {directory}; run `dvc repro` to train it")
        doc, path = entry
        collected.append((doc, read_json(point_timings(study, path.stem))))
    return collected


def noise_runs(params, study: str, collected: list[tuple[dict, dict]]) -> tuple[dict, list[dict]]:
    """The noise point and its runs: the study's own run (params' seed), then every noise seed's."""
    point = noise_point(params, study)
    own = next(doc for doc, _ in collected if all(doc[a] == v for a, v in point.items()))
    path = noise_metrics(study)
    doc = read_json(path) if path.is_file() else None
    seeds = [run.get("seed") for run in doc.get("runs", [])] if isinstance(doc, dict) else []
    if not isinstance(doc, dict) or {k: doc.get(k) for k in point} != point or seeds != list(params.sweeps.noise_seeds):
        raise PicoError(f"study {study}: {path} does not hold the noise point {point} with seeds {params.sweeps.noise_seeds}; "
                        "run `dvc repro` to train them")
    return point, [own, *doc["runs"]]


def aggregate(params, study: str) -> tuple[dict, dict]:
    """The study's tidy table (deterministic) and its timings table."""
    spec = study_of(study)
    axes = axis_names(study)
    collected = collect(params, study)
    docs = [doc for doc, _ in collected]
    point, runs = noise_runs(params, study, collected)
    table: dict[str, Any] = {
        "sweep": study, "eval_docs": params.sweeps.eval_docs, "unigram_val_bpb": docs[0]["unigram_val_bpb"],
        "rows": [spec.row(doc, axes) for doc in docs],
        "noise": noise_section(spec.noise_field, point, runs),
        **spec.extras(docs),
    }
    table["summary"] = spec.summarize(table, params.sweeps.study(study))
    timing_rows = [{"point": doc["point"], "seed": doc["seed"], **{f: t[f] for f in TIMING_FIELDS}} for doc, t in collected]
    timing_rows += [{"point": t["point"], "seed": t["seed"], **{f: t[f] for f in TIMING_FIELDS}}
                    for t in read_json(noise_timings(study))["runs"]]
    timings = {"sweep": study, "rows": timing_rows,
               "total_elapsed_seconds": round(sum(r["elapsed_seconds"] for r in timing_rows), 3)}
    return table, timings
