"""Shared fixtures: the real pipeline, run once per session on the smoke profile."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from picollm.profiles import materialize, run

# Two cores are shared by torch's intra-op pool and the test runner; one thread keeps timings sane.
torch.set_num_threads(1)

# The stages must run as on a user's machine, where Python writes __pycache__/ beside the code the
# stages declare as dependencies (.dvcignore keeps it out of their hashes; a test checks that).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


@pytest.fixture(scope="session")
def smoke_repo(tmp_path_factory) -> Path:
    """A git repo holding the pipeline with params from profiles/smoke.yaml, after one `dvc repro`."""
    repo = materialize("smoke", tmp_path_factory.mktemp("smoke"))
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "smoke run"], repo)
    return repo


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
