"""Data-parallel training under torchrun (gloo on CPU) matches one process on the same global batch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import make_token_dir, stage_env

pytestmark = pytest.mark.slow  # torchrun: several Python processes that import torch

WORKER = Path(__file__).resolve().parent / "distributed_worker.py"
# Two processes average two half-batch gradients; one process takes the mean over the whole
# batch. Equal in exact arithmetic, so only float summation order differs: 1e-4 relative.
LOSS_RTOL = 1e-4


def run_worker(token_dir: Path, out: Path, nproc: int, micro: int = 0, optimizer: str = "adamw") -> list[dict]:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1 else [sys.executable]
    env = {**stage_env(), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*launcher, str(WORKER), str(token_dir), str(out), str(micro), optimizer], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def token_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("ddp_tokens")
    make_token_dir(directory)
    return directory


def losses(history: list[dict], key: str) -> list[float]:
    return [row[key] for row in history if key in row]


def test_two_gloo_processes_match_one_process(token_dir, tmp_path):
    single = run_worker(token_dir, tmp_path / "single.json", nproc=1)
    ddp = run_worker(token_dir, tmp_path / "ddp.json", nproc=2)
    assert len(losses(single, "train_loss")) == 12
    assert losses(ddp, "train_loss") == pytest.approx(losses(single, "train_loss"), rel=LOSS_RTOL)
    assert losses(ddp, "val_loss") == pytest.approx(losses(single, "val_loss"), rel=LOSS_RTOL)


def test_gradient_accumulation_keeps_the_global_batch(token_dir, tmp_path):
    whole = run_worker(token_dir, tmp_path / "whole.json", nproc=1)
    accumulated = run_worker(token_dir, tmp_path / "accumulated.json", nproc=1, micro=2)  # 4 micro-steps of 2 rows
    assert losses(accumulated, "train_loss") == pytest.approx(losses(whole, "train_loss"), rel=LOSS_RTOL)


def test_muon_in_two_gloo_processes_matches_one_process(token_dir, tmp_path):
    # Muon orthogonalises the gradient DDP has already averaged, so every rank takes the same step.
    single = run_worker(token_dir, tmp_path / "single.json", nproc=1, optimizer="muon")
    ddp = run_worker(token_dir, tmp_path / "ddp.json", nproc=2, optimizer="muon")
    assert losses(ddp, "train_loss") == pytest.approx(losses(single, "train_loss"), rel=LOSS_RTOL)
    assert losses(single, "train_loss") != losses(run_worker(token_dir, tmp_path / "adamw.json", nproc=1), "train_loss")
