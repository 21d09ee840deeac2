#!/usr/bin/env bash
# `make check-install`: install picollm as a new user would and check that it works.
#
# A fresh venv in a temp folder, filled by the Makefile's own install recipe with pip reading no
# configuration, so only the standard package index serves it (on Linux: torch's CUDA build and its
# CUDA libraries). Then: torch imports, one training step of the smoke profile runs through
# `dvc repro`, GPT-2's encoding loads from openai-whisper, tests/test_models.py passes, and
# requirements.lock resolves for macOS arm64, Windows and Linux aarch64 from metadata alone.
# `make check-install TORCH=cpu` checks the CPU-only build instead. Details: docs/install.md.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/picollm-check-install.XXXXXX")
# The venv holds several GB (the CUDA libraries); removing it can take a while.
trap 'echo "removing $work"; rm -rf "$work"' EXIT
began=$SECONDS

# PIP_CONFIG_FILE=/dev/null makes pip skip every configuration file, the global ones included
# (which --isolated alone still reads); --isolated makes it ignore PIP_* variables. The cache is
# skipped too, so nothing comes from an earlier run.
export PIP_CONFIG_FILE=/dev/null
venv=$work/venv
pip="$venv/bin/pip --isolated --no-cache-dir --disable-pip-version-check"
torch_locked=$(sed -n 's/^torch==\([^ ;]*\).*/\1/p' requirements.lock)

step() { printf '\n== %s\n' "$*"; }

step "make install into a fresh venv ($venv), standard index only"
make --no-print-directory install VENV="$venv" PIP="$pip"
install_s=$((SECONDS - began))
venv_size=$(du -sh "$venv" | cut -f1)

step "torch, the installed set, and GPT-2's encoding"
summary=$("$venv/bin/python" - "$torch_locked" "${TORCH:-}" <<'EOF'
import sys
from importlib.metadata import distributions, version

import torch

from picollm.tokenizer import load_gpt2

locked, flavour = sys.argv[1], sys.argv[2]
# The index's builds name their flavour only in torch.__version__ (e.g. 2.13.0+cu130); PyTorch's
# CPU-only build names it in the package version too.
expected = f"{locked}+cpu" if flavour == "cpu" else locked
if version("torch") != expected:
    sys.exit(f"torch {version('torch')} is installed, expected {expected} (requirements.lock, TORCH={flavour!r})")
names = sorted({d.metadata["Name"].lower().replace("_", "-") for d in distributions()})
cuda = [n for n in names if n.startswith(("nvidia-", "cuda-")) and n != "nvidia-ml-py"]  # ml-py: dvclive's
if "numba" in names:
    sys.exit("numba is installed: openai-whisper's dependencies came with it (it must be installed with --no-deps)")
if (torch.ones(3) @ torch.ones(3)).item() != 3:
    sys.exit("torch computes ones(3) @ ones(3) != 3")
if load_gpt2().encoding.encode("Hello world") != [15496, 995]:
    sys.exit("GPT-2's encoding from openai-whisper does not encode 'Hello world' as [15496, 995]")
build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
extra = f", {len(cuda)} CUDA libraries (nvidia-*, cuda-*)" + (" and triton" if "triton" in names else "") if cuda else ""
print(f"installed: {len(names)} packages{extra}; openai-whisper alone, without numba")
print(f"torch {torch.__version__} ({build}), torch.cuda.is_available() = {torch.cuda.is_available()}")
EOF
)
echo "$summary"

step "one training step of the smoke profile (dvc repro train@gptoss)"
smoke=$("$venv/bin/python" - "$work/smoke" <<'EOF'
import json
import subprocess
import sys
from pathlib import Path

import yaml

from picollm.profiles import materialize, pipeline_env

repo = materialize("smoke", Path(sys.argv[1]))
params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
params["train"].update(steps=1, warmup_steps=0, log_every=1, eval_every=1, eval_batches=1, checkpoint_every=1)
(repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
result = subprocess.run(["dvc", "repro", "train@gptoss"], cwd=repo, env=pipeline_env(), capture_output=True, text=True)
if result.returncode != 0:
    sys.exit(f"dvc repro train@gptoss failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
metrics = json.loads((repo / "metrics" / "train" / "gptoss" / "metrics.json").read_text(encoding="utf-8"))
if metrics["steps"] != 1:
    sys.exit(f"the smoke run trained {metrics['steps']} steps, expected 1")
print(f"smoke profile: 1 training step of gptoss through dvc repro (train loss {metrics['train']['loss']:.3f})")
EOF
)
echo "$smoke"

step "pytest -x -q tests/test_models.py"
"$venv/bin/python" -m pytest -x -q -p no:cacheprovider tests/test_models.py | tee "$work/pytest.log"
tests="tests/test_models.py: $(tail -n 1 "$work/pytest.log" | tr -d '=' | sed 's/^ *//; s/ *$//')"

step "requirements.lock on the other platforms (uv, from package metadata: no large wheel is downloaded)"
for name in $(compgen -e | grep '^UV_' || true); do unset "$name"; done
export UV_CACHE_DIR=$work/uv-cache
"$venv/bin/python" -m venv "$work/tools"
"$work/tools/bin/pip" --isolated --no-cache-dir --disable-pip-version-check install --quiet -r requirements-tools.txt
uv="$work/tools/bin/uv"
# The package index serves these pure-Python packages only as sdists. Built here, each must give a py3-none-any
# wheel (so it installs anywhere); the resolutions below then need a wheel for everything else.
sdist_only=$(grep -E '^antlr4-python3-runtime==' requirements.lock | cut -d' ' -f1)
"$work/tools/bin/pip" --isolated --no-cache-dir --disable-pip-version-check wheel --quiet --no-deps -w "$work/wheels" "$sdist_only" -r requirements-nodeps.txt
if ls "$work/wheels" | grep -v -- '-py3-none-any\.whl$'; then
    echo "a package above built a platform-specific wheel: it would not install everywhere" >&2
    exit 1
fi
# The lock must be what the universal resolution of pyproject.toml gives (its own pins preferred).
cp requirements.lock "$work/universal.lock"
"$uv" pip compile --no-config --quiet pyproject.toml --extra test --group bootstrap --universal --python-version 3.11 \
    -o "$work/universal.lock"
if ! diff <(grep -v '^ *#' requirements.lock) <(grep -v '^ *#' "$work/universal.lock"); then
    echo "requirements.lock is out of date with pyproject.toml: regenerate it (docs/install.md)" >&2
    exit 1
fi
platforms=""
# torch's macOS wheels need macOS 14 or later (tag macosx_14_0_arm64).
for target in "macOS arm64:aarch64-apple-darwin" "Windows x86-64:x86_64-pc-windows-msvc" "Linux aarch64:aarch64-manylinux_2_28"; do
    label=${target%%:*} triple=${target#*:}
    MACOSX_DEPLOYMENT_TARGET=14.0 "$uv" pip compile --no-config --quiet pyproject.toml --extra test --group bootstrap \
        -c requirements.lock --python-platform "$triple" --python-version 3.11 --only-binary :all: \
        --find-links "$work/wheels" --no-header --no-annotate -o "$work/$triple.txt"
    unlocked=$(cut -d= -f1 "$work/$triple.txt" | while read -r pkg; do grep -qiE "^$pkg==" requirements.lock || echo "$pkg"; done)
    if [ -n "$unlocked" ]; then
        echo "$label needs packages that requirements.lock does not pin: $unlocked" >&2
        exit 1
    fi
    line="$label: resolves from requirements.lock to $(wc -l < "$work/$triple.txt") packages, all wheels ($(grep '^torch==' "$work/$triple.txt"))"
    echo "$line"
    platforms+="$line"$'\n'
done

step "check-install passed in $((SECONDS - began)) s (install: ${install_s} s, venv: $venv_size)"
printf '%s\n%s\n%s\n%s' "$summary" "$smoke" "$tests" "$platforms"
echo "requirements.lock: up to date with pyproject.toml (uv universal resolution)"
