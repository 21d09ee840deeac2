"""The real `dvc repro`, end to end, on the smoke profile in a temporary git repository."""

from __future__ import annotations

import re

import yaml

from conftest import read_json
from picollm.profiles import run

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
    report = (smoke_repo / "reports/models.md").read_text()
    assert "Where the validation loss goes" in report
    # The floor's name draws: a part of it, shown in the floor row's first-mention column.
    floor, names = data["entropy_floor_nats_per_story"], data["entropy_floor_name_nats_per_story"]
    assert 0 < names < floor
    assert f"| *entropy floor* | {floor:.1f} | {names:.1f} | | | {floor - names:.1f} | |" in report


def test_unchanged_repro_runs_no_stage(smoke_repo):
    out = run(["dvc", "repro"], smoke_repo).stdout
    assert "Running stage" not in out, out


def test_param_change_reruns_only_that_model_and_shows_in_metrics_diff(smoke_repo):
    params_path = smoke_repo / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["models"]["lstm"]["hidden"] = 48
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        out = run(["dvc", "repro"], smoke_repo).stdout
        ran = set(re.findall(r"Running stage '([^']+)'", out))
        assert {"train@lstm", "evaluate@lstm"} <= ran, out
        assert not any("gptoss" in stage or "kgram" in stage for stage in ran), out
        diff = run(["dvc", "metrics", "diff", "--json"], smoke_repo).stdout
        assert "metrics/eval/lstm.json" in diff and "val_loss" in diff
        assert "metrics/eval/gptoss.json" not in diff
    finally:
        # Leave the shared repo as committed for the tests that follow. A reset, not a checkout:
        # core.autostage has already staged the new dvc.lock.
        run(["git", "reset", "-q", "--hard", "HEAD"], smoke_repo)
        run(["dvc", "checkout", "--force"], smoke_repo)
