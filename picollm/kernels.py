"""Which CPU kernels torch runs: the same AVX2 code paths on every x86-64 Linux machine, so that a
run is byte-identical across CPUs whatever vector unit they have (docs/reliability.md).

torch picks its kernels by the CPU it finds: ATen's vectorised ops (AVX2 or AVX-512), oneDNN's
(the LSTM, bf16 matmuls) and MKL's (fp32 matmuls) each have code paths per instruction set, and
each path sums in its own order. Training amplifies those last-bit differences, so a checkpoint
made on an AVX-512 CPU is not the one an AVX2 CPU makes. Pinning all three libraries to their AVX2
paths, which every x86-64 CPU since 2013 runs, removes the difference.

The switches are environment variables that each library reads once, when it first runs, so
`picollm/__init__.py` applies them before anything imports torch. `PICOLLM_KERNELS=native` keeps
the CPU's own kernels (the bench stage measures those); a variable the user set is never replaced.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, MutableMapping
from pathlib import Path

KERNELS_ENV = "PICOLLM_KERNELS"
MODES = ("portable", "native")
PORTABLE_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",  # ATen's vectorised ops
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN: the LSTM and bf16 matmuls
    "MKL_CBWR": "AVX2",  # MKL's conditional numerical reproducibility: its fp32 matmuls on Intel CPUs
}
REQUIRED_FLAGS = frozenset({"avx2", "fma"})  # what the AVX2 paths execute


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first CPU's feature flags, or none where the file is missing (macOS, Windows)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def portable_settings(environ: Mapping[str, str], machine: str, flags: frozenset[str]) -> dict[str, str]:
    """The variables to add to `environ` for the mode it asks for (nothing where the CPU could not
    run the AVX2 paths, or the user already chose a value)."""
    mode = environ.get(KERNELS_ENV, "portable")
    if mode not in MODES:
        raise ValueError(f"the environment variable {KERNELS_ENV}={mode!r} is not one of {', '.join(MODES)}")
    if mode == "native" or machine.lower() not in ("x86_64", "amd64") or not REQUIRED_FLAGS <= flags:
        return {}
    return {key: value for key, value in PORTABLE_ENV.items() if key not in environ}


def apply(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set the portable kernels' variables in `environ` (the process's own by default)."""
    try:
        environ.update(portable_settings(environ, platform.machine(), cpu_flags()))
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None  # raised while importing picollm: no stage has started
