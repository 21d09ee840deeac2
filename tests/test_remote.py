"""Shared caches: `dvc push` from one clone, `dvc pull` in a fresh one, and nothing retrains."""

from __future__ import annotations

import re

from picollm.profiles import run


def test_push_then_pull_in_a_fresh_clone_restores_everything(smoke_clone, tmp_path):
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "--local", "shared", str(remote)], smoke_clone)
    run(["dvc", "push", "-r", "shared"], smoke_clone)

    clone = tmp_path / "fresh"
    run(["git", "clone", "-q", str(smoke_clone), str(clone)], tmp_path)
    run(["dvc", "remote", "add", "--local", "shared", str(remote)], clone)
    run(["dvc", "pull", "-r", "shared"], clone)

    assert (clone / "models" / "gptoss.ckpt").is_file()
    assert (clone / "data" / "tokens" / "train.bin").is_file()
    out = run(["dvc", "repro"], clone).stdout
    assert not re.findall(r"Running stage '([^']+)'", out), out
