"""Portable kernels: every x86-64 Linux CPU runs torch's AVX2 code paths unless told otherwise."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from picollm.kernels import KERNELS_ENV, PORTABLE_ENV, cpu_flags, portable_settings

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma", "avx512f"})


def test_an_avx2_cpu_gets_every_portable_variable():
    assert portable_settings({}, "x86_64", AVX2) == PORTABLE_ENV


def test_a_value_the_user_set_is_kept():
    added = portable_settings({"ATEN_CPU_CAPABILITY": "avx512"}, "x86_64", AVX2)
    assert "ATEN_CPU_CAPABILITY" not in added and added["ONEDNN_MAX_CPU_ISA"] == "AVX2"


@pytest.mark.parametrize("environ, machine, flags", [
    ({KERNELS_ENV: "native"}, "x86_64", AVX2),  # asked for
    ({}, "aarch64", frozenset({"asimd"})),  # not x86
    ({}, "x86_64", frozenset({"sse4_2", "avx"})),  # no AVX2: the AVX2 paths would not run
    ({}, "x86_64", frozenset()),  # flags unknown (no /proc/cpuinfo)
])
def test_native_kernels_where_asked_or_where_avx2_cannot_run(environ, machine, flags):
    assert portable_settings(environ, machine, flags) == {}


def test_a_bad_mode_names_the_variable_and_the_choices():
    with pytest.raises(ValueError, match=r"PICOLLM_KERNELS='fast' is not one of portable, native"):
        portable_settings({KERNELS_ENV: "fast"}, "x86_64", AVX2)


def _python(*args: str, **env: str) -> subprocess.CompletedProcess:
    """A fresh interpreter whose kernel variables are only `env` (none inherited from this one)."""
    clean = {k: v for k, v in os.environ.items() if k not in (*PORTABLE_ENV, KERNELS_ENV)}
    return subprocess.run([sys.executable, *args], env={**clean, **env}, capture_output=True, text=True)


def _capability(**env: str) -> subprocess.CompletedProcess:
    return _python("-c", "import picollm, torch; print(torch.backends.cpu.get_cpu_capability())", **env)


@pytest.mark.skipif(platform.machine() != "x86_64" or not {"avx2", "fma"} <= cpu_flags(), reason="needs an x86-64 CPU with AVX2")
def test_importing_picollm_pins_torch_to_avx2_and_native_opts_out():
    assert _capability().stdout.strip() == "AVX2"
    native = _capability(PICOLLM_KERNELS="native").stdout.strip()
    assert native == ("AVX512" if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= cpu_flags() else "AVX2")
    bad = _capability(PICOLLM_KERNELS="fast")
    assert bad.returncode != 0 and bad.stderr.strip() == "error: the environment variable PICOLLM_KERNELS='fast' is not one of portable, native"


# Recorded on an AMD EPYC with AVX-512 under the portable kernels; its own kernels give other bytes.
# An AMD CPU with AVX2 only trained c733b0c's default run to the same checkpoints (docs/reliability.md);
# Intel CPUs run MKL's own AVX2 branch, untested, so they are not held to these.
PORTABLE_SHA = {"kgram": "5ce3d2c72ed13ed1", "lstm": "c8ed447009cb14b3", "gpt2": "1f101f79a450bb21", "llama3lite": "3fe5deac2add4a97"}


def _vendor() -> str:
    try:
        return next((line.split(":")[1].strip() for line in open("/proc/cpuinfo") if line.startswith("vendor_id")), "")
    except OSError:
        return ""


@pytest.mark.skipif(platform.machine() != "x86_64" or not {"avx2", "fma"} <= cpu_flags() or _vendor() != "AuthenticAMD",
                    reason="the pinned bytes were recorded on AMD x86-64 CPUs with AVX2")
def test_portable_kernels_train_to_the_same_bytes_on_every_amd_cpu():
    run = _python(str(Path(__file__).with_name("portable_bytes.py")))
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == PORTABLE_SHA


def _auto_dtype(**env: str) -> str:
    code = "import picollm, torch; from picollm.device import resolve_dtype; print(resolve_dtype('auto', torch.device('cpu'), announce=False))"
    run = _python("-c", code, **env)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_dtype_auto_is_bf16_only_where_the_kernels_in_use_compute_it_natively():
    import torch

    from picollm.device import resolve_dtype

    assert resolve_dtype("float32", torch.device("cpu")) == "float32"
    assert resolve_dtype("bfloat16", torch.device("cpu")) == "bfloat16"
    native_bf16 = bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
    assert _auto_dtype(PICOLLM_KERNELS="native") == ("bfloat16" if native_bf16 else "float32")
    if {"avx2", "fma"} <= cpu_flags():
        assert _auto_dtype() == "float32"  # the AVX2 pin has no native bf16
