"""The real `dvc repro`, end to end, on the smoke profile in a temporary git repository."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import yaml

from picollm.profiles import run

from conftest import read_json

SMOKE_MODELS = ("kgram_embed", "lstm", "gptoss")


def test_repro_writes_every_declared_output(smoke_repo):
    data = read_json(smoke_repo / "metrics/data.json")
    assert data["entropy_floor_bpb"] > 0
    assert all(data["splits"][s]["documents"] > 0 for s in ("train", "val", "test"))
    tokenizer = read_json(smoke_repo / "metrics/tokenizer.json")
    assert tokenizer["vocab_size"] == 384
    for name in SMOKE_MODELS:
        metrics = read_json(smoke_repo / f"metrics/eval/{name}.json")
        assert {"val_loss", "test_loss", "val_ppl", "val_bpb", "unigram_val_bpb", "floor_gap_bpb"} <= set(metrics)
        # Even 20 steps must beat the floor-free baseline, and no model may beat the floor.
        assert metrics["entropy_floor_bpb"] < metrics["val_bpb"] < metrics["unigram_val_bpb"]
        samples = (smoke_repo / f"reports/samples/{name}.md").read_text()
        assert "## greedy" in samples and "Once upon a time" in samples
        assert (smoke_repo / f"models/{name}.ckpt").is_file()
        assert (smoke_repo / f"metrics/train/{name}/plots/metrics/train/loss.tsv").is_file()
        # Where the val loss goes: the classes partition every prediction, so they add up to it.
        by_class = metrics["val_loss_by_class"]
        assert abs(sum(cell["nats_per_doc"] for cell in by_class.values()) - metrics["val_nats_per_doc"]) < 0.01
        assert by_class["end"]["tokens_per_doc"] == 1.0 and by_class["name_first"]["tokens_per_doc"] >= 1.0
        assert_units_agree(smoke_repo, metrics, data, tokenizer)
    report = (smoke_repo / "reports/models.md").read_text()
    assert "Where the validation loss goes" in report
    # The floor's name draws: a part of it, shown in the floor row's first-mention column.
    floor, names = data["entropy_floor_nats_per_story"], data["entropy_floor_name_nats_per_story"]
    assert 0 < names < floor
    assert f"| *entropy floor* | {floor:.1f} | {names:.1f} | | | {floor - names:.1f} | |" in report


def assert_units_agree(repo, metrics: dict, data: dict, tokenizer: dict) -> None:
    """Each unit of a model's val metrics from its loss and the corpus sizes; the floor and the
    baseline recomputed from the prepared files and the token caches, not from the stages' code."""
    predictions = tokenizer["tokens"]["val"] - 1  # the leading separator is context only
    val = data["splits"]["val"]
    assert metrics["val_bpb"] == pytest.approx(metrics["val_loss"] * predictions / math.log(2) / val["bytes"], abs=2e-5)
    assert metrics["val_nats_per_doc"] == pytest.approx(metrics["val_loss"] * predictions / val["documents"], abs=2e-3)
    assert sum(c["tokens_per_doc"] for c in metrics["val_loss_by_class"].values()) == pytest.approx(
        predictions / val["documents"], abs=3e-3)
    assert metrics["floor_gap_bpb"] == pytest.approx(metrics["val_bpb"] - data["entropy_floor_bpb"], abs=2e-6)
    documents = [json.loads(line) for line in (repo / "data/prepared/val.jsonl").read_text(encoding="utf-8").splitlines()]
    nats = -math.fsum(d["logprob"] for d in documents)
    assert len(documents) == val["documents"] and sum(len(d["text"].encode()) for d in documents) == val["bytes"]
    assert metrics["entropy_floor_bpb"] == data["entropy_floor_bpb"] == round(nats / math.log(2) / val["bytes"], 6)
    assert data["entropy_floor_nats_per_story"] == round(nats / len(documents), 6)
    train = np.fromfile(repo / "data/tokens/train.bin", dtype=np.uint16)
    held_out = np.fromfile(repo / "data/tokens/val.bin", dtype=np.uint16)[1:]
    smoothed = np.bincount(train, minlength=tokenizer["vocab_size"]) + 1.0
    unigram = -np.log2(smoothed[held_out] / smoothed.sum()).sum() / val["bytes"]
    assert metrics["unigram_val_bpb"] == tokenizer["unigram_val_bpb"] == pytest.approx(unigram, abs=2e-6)


def test_a_fresh_clone_retrains_the_models_and_skips_every_stage_git_holds(smoke_repo, tmp_path):
    """A `git clone` has no DVC cache: `dvc repro` rebuilds the data and the models, they come out
    byte for byte as dvc.lock records them, and every later stage is skipped but the two that read
    the new timings (docs/pipeline.md, "What a fresh clone reruns")."""
    clone = tmp_path / "fresh"
    run(["git", "clone", "-q", str(smoke_repo), str(clone)], tmp_path)
    out = run(["dvc", "repro"], clone).stdout
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    assert ran == {"prepare", "tokenize", *(f"train@{m}" for m in SMOKE_MODELS), "throughput", "report"}, out
    changed = {line[3:] for line in run(["git", "status", "--porcelain"], clone).stdout.splitlines()}
    assert {path for path in changed if not path.startswith("metrics/timings/")} <= {
        "dvc.lock", "plots/throughput.png", "reports/index.html"}, changed


def test_unchanged_repro_runs_no_stage(smoke_clone):
    out = run(["dvc", "repro"], smoke_clone).stdout
    assert "Running stage" not in out, out


def test_param_change_reruns_only_that_model_and_shows_in_metrics_diff(smoke_clone):
    params_path = smoke_clone / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["models"]["lstm"]["hidden"] = 48
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro"], smoke_clone).stdout
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    # Exactly the model's own stages and the cheap summaries that read every model; never the
    # bench, another model's training or sampling, or a study point of another model.
    assert ran == {"train@lstm", "evaluate@lstm", "interpret@lstm", "sample@lstm", "compare", "sample_summary", "plots",
                   "throughput", "report"}, out
    diff = run(["dvc", "metrics", "diff", "--json"], smoke_clone).stdout
    assert "metrics/eval/lstm.json" in diff and "val_loss" in diff
    assert "metrics/eval/gptoss.json" not in diff
