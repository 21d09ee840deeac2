"""Profiles: named deltas over params.yaml under `profiles/` (smoke, long, gpu).

    picollm profile use gpu        # params.yaml <- profiles/gpu.yaml (old one backed up)
    picollm profile run smoke      # run the pipeline on a profile in a scratch git repo

`run` copies the pipeline (dvc.yaml, stages, library, shipped data) into a fresh git repository,
so a profile never touches the working tree's outputs. The end-to-end tests use the same code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from picollm.errors import PicoError
from picollm.io import write_text
from picollm.params import load_params

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PIPELINE_FILES = ("dvc.yaml", ".dvcignore", ".gitignore", "pyproject.toml")
PIPELINE_DIRS = ("stages", "picollm", "data/custom", "profiles", ".dvc")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "tmp", "cache")


def profile_path(name: str) -> Path:
    path = PROJECT_ROOT / "profiles" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (PROJECT_ROOT / "profiles").glob("*.yaml"))
        raise PicoError(f"profile {name!r} does not exist (no {path}); known profiles: {known}")
    return path


# A profile is a delta over params.yaml: mappings merge key by key, except these, which a profile
# replaces whole (a profile chooses which models exist, not just how they are sized).
REPLACED_WHOLE = {"models"}


def merge_params(base: dict, delta: dict, depth: int = 0) -> dict:
    merged = dict(base)
    for key, value in delta.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and not (depth == 0 and key in REPLACED_WHOLE):
            merged[key] = merge_params(merged[key], value, depth + 1)
        else:
            merged[key] = value
    return merged


def profile_params_text(profile: str, base: Path = PROJECT_ROOT / "params.yaml") -> str:
    """The full params.yaml for a profile: the default params with the profile's delta applied."""
    delta = yaml.safe_load(profile_path(profile).read_text(encoding="utf-8")) or {}
    merged = merge_params(yaml.safe_load(base.read_text(encoding="utf-8")), delta)
    header = f"# Generated from params.yaml + profiles/{profile}.yaml by `picollm profile`.\n"
    return header + yaml.safe_dump(merged, sort_keys=False)


def pipeline_env() -> dict[str, str]:
    """The environment stages need: this interpreter's bin first on PATH, DVC offline."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "picollm"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "picollm@localhost"
    return env


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=pipeline_env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def materialize(profile: str, dest: Path) -> Path:
    """A fresh git repo at `dest` holding the pipeline with the profile as params.yaml, committed."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PIPELINE_FILES:
        shutil.copy2(PROJECT_ROOT / name, dest / name)
    for name in PIPELINE_DIRS:
        shutil.copytree(PROJECT_ROOT / name, dest / name, ignore=IGNORED, dirs_exist_ok=True)
    (dest / "params.yaml").write_text(profile_params_text(profile), encoding="utf-8")
    load_params(dest / "params.yaml")  # fail before any git/dvc work if the profile is invalid
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", f"profile {profile}"], dest)
    return dest


def use(profile: str) -> Path:
    """Make a profile the working params.yaml, keeping the old one as params.yaml.bak."""
    target = PROJECT_ROOT / "params.yaml"
    text = profile_params_text(profile, base=target)
    scratch = Path(tempfile.mkdtemp()) / "params.yaml"
    scratch.write_text(text, encoding="utf-8")
    load_params(scratch)  # validate before touching the user's file
    shutil.copy2(target, target.with_name("params.yaml.bak"))
    write_text(target, text)
    return target


def run_profile(name: str, directory: Path | None = None) -> int:
    """`dvc repro` on profile `name` in a scratch git repository; its exit code."""
    dest = materialize(name, directory or Path(tempfile.mkdtemp(prefix=f"picollm-{name}-")))
    began = time.perf_counter()
    result = subprocess.run(["dvc", "repro"], cwd=dest, env=pipeline_env())
    print(f"profile {name}: dvc repro exited {result.returncode} in {time.perf_counter() - began:.1f} s, in {dest}")
    return result.returncode
