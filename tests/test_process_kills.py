"""Real training processes killed part-way (SIGKILL, SIGTERM): the resumed run ends byte-identical.

Compared with an uninterrupted run: the model checkpoint (weights, loss history) and, for the
stage, the DVCLive metrics and plots. Every test here starts Python processes that import torch.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from picollm.checkpoint import load_checkpoint
from picollm.train import train_model

import helpers as H

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stage_workspace(tmp_path_factory):
    """prepare + tokenize done (in process) for a 120-step tiny transformer run."""
    params = H.smoke_params(train={**H.TINY_TRAIN, "steps": 120, "log_every": 10, "eval_every": 50})
    root = H.workspace(tmp_path_factory.mktemp("stage"), params)
    for stage in ("prepare", "tokenize"):
        assert H.call_stage(root, stage)[0] == 0
    return root


def wait_for(predicate, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, f"training ended before the signal could be sent: {process.communicate()}"
        assert time.monotonic() < deadline, "timed out waiting for a checkpoint"
        time.sleep(0.005)


def checkpoint_identity(path: Path):
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def test_sigkill_then_sigterm_then_resume_matches_an_uninterrupted_run(stage_workspace, tmp_path):
    """Kill `python -m stages.train tiny` with SIGKILL, then SIGTERM, then let it finish.

    Compared with an uninterrupted run of the same stage: the model checkpoint (weights, loss
    history) and the DVCLive metrics and plots are byte-identical.
    """
    uninterrupted = tmp_path / "uninterrupted"
    shutil.copytree(stage_workspace, uninterrupted)
    assert H.call_stage(uninterrupted, "train", "tiny")[0] == 0

    root = stage_workspace
    last = root / "checkpoints" / "tiny" / "last.ckpt"

    # 1. SIGKILL as soon as the first resume point exists: no chance to clean up.
    first = H.start_stage(root, "train", "tiny")
    wait_for(last.is_file, first)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(last)["step"]
    assert 5 <= killed_at < 120 and not (root / "models" / "tiny.ckpt").exists()

    # 2. Resume, then SIGTERM once it has written a newer checkpoint: it saves and exits 143.
    before = checkpoint_identity(last)
    second = H.start_stage(root, "train", "tiny")
    wait_for(lambda: checkpoint_identity(last) not in (before, None), second)
    second.send_signal(signal.SIGTERM)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 128 + signal.SIGTERM, err
    assert f"resuming tiny from step {killed_at}" in err
    termed_at = load_checkpoint(last)["step"]
    assert f"stopped by signal {int(signal.SIGTERM)} after step {termed_at}" in err
    assert killed_at < termed_at < 120 and not (root / "models" / "tiny.ckpt").exists()

    # 3. Finish: resumes from the SIGTERM checkpoint; outputs equal the uninterrupted run's.
    final = H.run_stage(root, "train", "tiny")
    assert final.returncode == 0, final.stderr
    assert json.loads((root / "metrics/timings/train/tiny.json").read_text())["resumed_from_step"] == termed_at
    assert not last.exists() and not list(last.parent.glob(".*.tmp"))
    assert H.tree_snapshot(root, "models", "metrics/train") == H.tree_snapshot(uninterrupted, "models", "metrics/train")


KILL_WORKER = Path(__file__).resolve().parent / "kill_worker.py"


@pytest.mark.parametrize("kill_at", [3, 7, 19])  # before the first checkpoint, between two, in the last step
def test_sigkill_at_a_step_between_checkpoints_resumes_byte_identically(token_cache, reference, tmp_path, kill_at):
    """A real SIGKILL of a training process as step `kill_at` begins (checkpoints every 5 steps):
    the rerun resumes from the last checkpoint before it, or from scratch, and ends byte-identical."""
    tok, token_dir = token_cache
    killed = subprocess.run([H.PYTHON, str(KILL_WORKER), str(tmp_path), str(token_dir), str(kill_at)],
                            env=H.stage_env(), capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # Steps are logged every 2: the last line is the step before the kill, the next never came.
    assert f"tiny step {kill_at - 1}/20 " in killed.stderr and f"tiny step {kill_at + 1}/20 " not in killed.stderr
    job = H.make_job(tmp_path, tok, token_dir)
    assert job.train.checkpoint_every == 5 and not job.model_out.exists()
    resume_point = kill_at // 5 * 5
    last = job.checkpoint_dir / "last.ckpt"
    assert (load_checkpoint(last)["step"] if last.exists() else 0) == resume_point
    result = train_model(job)
    assert result.resumed_from == resume_point
    assert job.model_out.read_bytes() == reference[2] and result.history == reference[1].history
