"""Shared fixtures: the real pipeline, run once per session on the smoke profile.

`smoke_repo` is read-only: a test that runs a stage, edits params or adds DVC config works in
its own `smoke_clone` (a git clone sharing the DVC cache), and the session checks at teardown
that the shared repository is still exactly as committed. Every test that uses the pipeline is
marked `slow`, so `pytest -m "not slow"` is the unit layer.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from picollm.profiles import materialize, run
from picollm.train import train_model

import helpers as H

# Two cores are shared by torch's intra-op pool and the test runner; one thread keeps timings sane.
torch.set_num_threads(1)

# The stages must run as on a user's machine, where Python writes __pycache__/ beside the code the
# stages declare as dependencies (.dvcignore keeps it out of their hashes; a test checks that).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


# Fixtures that run the real pipeline or train for seconds: every test using one is `slow`.
SLOW_FIXTURES = {"smoke_repo", "smoke_clone", "finished", "copy_model"}


# The test modules that use the shared smoke repository (its one `dvc repro` is the costliest setup).
SMOKE_MODULES = {
    f"tests/{path.name}" for path in Path(__file__).parent.glob("test_*.py")
    if re.search(r"\bsmoke_(repo|clone)\b", path.read_text(encoding="utf-8"))
}


def scope_of(nodeid: str) -> str:
    """A test's scheduling unit: its module, or "smoke" for every module of the smoke repository."""
    module = nodeid.split("::", 1)[0]
    return "smoke" if module in SMOKE_MODULES else module


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
    # The smoke modules first: under `pytest -n 2` their worker starts on the longest unit at once.
    items.sort(key=lambda item: scope_of(item.nodeid) != "smoke")


@pytest.hookimpl(optionalhook=True)  # an xdist hook: `-p no:xdist` runs the suite serially
def pytest_xdist_make_scheduler(config, log):
    """`make test` runs `pytest -n 2`: each module's tests on one worker (module fixtures are built
    once), and every module of the smoke repository on the same worker (so it is built once too),
    scheduled in collection order, smoke first, while the other worker takes the rest."""
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False

    class SmokeModulesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return SmokeModulesTogether(config, log)


@pytest.fixture(scope="session")
def smoke_repo(tmp_path_factory) -> Path:
    """A git repo holding the pipeline with params from profiles/smoke.yaml, after one `dvc repro`."""
    repo = materialize("smoke", tmp_path_factory.mktemp("smoke"))
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "smoke run"], repo)
    yield repo
    assert_as_committed(repo)


def assert_as_committed(repo: Path) -> None:
    """Nothing changed: no file git sees, no stale stage, no experiment, no local DVC config."""
    assert run(["git", "status", "--porcelain"], repo).stdout == "", "a test changed the shared smoke repo"
    assert json.loads(run(["dvc", "status", "--json"], repo).stdout) == {}, "a test left the shared smoke repo stale"
    assert run(["git", "for-each-ref", "refs/exps"], repo).stdout == "", "a test left DVC experiments in the shared smoke repo"
    assert not (repo / ".dvc" / "config.local").exists(), "a test left local DVC config in the shared smoke repo"


def clone_smoke_repo(smoke_repo: Path, dest: Path) -> Path:
    """A git clone of the smoke repo at `dest` with its DVC outputs checked out from the shared cache."""
    run(["git", "clone", "-q", str(smoke_repo), str(dest)], dest.parent)
    run(["dvc", "cache", "dir", "--local", str(smoke_repo / ".dvc" / "cache")], dest)
    run(["dvc", "checkout", "--quiet"], dest)
    return dest


@pytest.fixture
def smoke_clone(smoke_repo, tmp_path) -> Path:
    """The smoke repo, as committed, for one test to change at will."""
    return clone_smoke_repo(smoke_repo, tmp_path / "clone")


@pytest.fixture(scope="module")
def token_cache(tmp_path_factory):
    """A real BPE tokenizer and token caches (helpers.make_token_dir): (tokenizer, directory)."""
    token_dir = tmp_path_factory.mktemp("tokens")
    return H.make_token_dir(token_dir), token_dir


@pytest.fixture(scope="module")
def reference(token_cache, tmp_path_factory):
    """One uninterrupted run of the tiny transformer (dropout 0.1): its job, result and model bytes."""
    tok, token_dir = token_cache
    job = H.make_job(tmp_path_factory.mktemp("reference"), tok, token_dir)
    result = train_model(job)
    return job, result, job.model_out.read_bytes()


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
