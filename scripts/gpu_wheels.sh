#!/usr/bin/env bash
# Download the wheels scripts/gpu_check.sh needs besides PyTorch (the pinned versions of
# requirements.lock) into a folder to carry to a GPU machine that has only PyTorch installed.
#   scripts/gpu_wheels.sh [DIR] [PYTHON_VERSION]     default: gpu_wheels/ and 3.11
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-gpu_wheels}"
python_version="${2:-3.11}"
packages=(pydantic pydantic-core annotated-types typing-extensions typing-inspection numpy pyyaml)
pins=()
for name in "${packages[@]}"; do
  pin=$(grep -i -m1 "^${name}==" requirements.lock || true)
  if [[ -z "$pin" ]]; then
    echo "gpu_wheels.sh: requirements.lock pins no version of $name; add it there" >&2
    exit 1
  fi
  pins+=("$pin")
done
mkdir -p "$dir"
python -m pip download --only-binary=:all: --no-deps --platform manylinux2014_x86_64 \
  --platform manylinux_2_17_x86_64 --python-version "$python_version" -d "$dir" "${pins[@]}"
echo "wheels for ${pins[*]} in $dir; carry it with the repository and run scripts/gpu_check.sh --wheels $dir"
