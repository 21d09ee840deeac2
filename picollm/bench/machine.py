"""The machine the bench runs on: its CPU, native bf16 support, matrix-multiply peak and peak memory."""

from __future__ import annotations

import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from picollm.device import native_bf16
from picollm.kernels import cpu_flags

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_info() -> dict[str, Any]:
    """CPU model name and the flags that decide bf16 speed (Linux /proc/cpuinfo; empty elsewhere)."""
    model = ""
    try:
        model = next((line.partition(":")[2].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    except OSError:
        pass
    return {"cpu": model or platform.processor() or platform.machine(), "flags": set(cpu_flags())}


def bf16_support(device_type: str = "cpu") -> dict[str, Any]:
    """Whether bf16 matmuls run natively: CPU flags (AVX512-BF16, AMX) and oneDNN's own answer."""

    if device_type == "cuda":
        return {"native": native_bf16(torch.device("cuda")), "cpu_flags": [], "onednn_bf16": None}
    present = [flag for flag in BF16_CPU_FLAGS if flag in cpu_flags()]
    onednn = native_bf16(torch.device("cpu"))
    return {"native": bool(present) or onednn, "cpu_flags": present, "onednn_bf16": onednn}


def matmul_peak(dtype_name: str = "float32", size: int = 1024, repeats: int = 5, cap_seconds: float = 3.0,
                device: str = "cpu") -> dict:
    """GFLOP/s of torch.mm on square matrices of side `size`: the median of `repeats` products.

    For other dtypes than fp32 a quick product at side 256 first estimates the rate; when `repeats`
    products at `size` would take longer than `cap_seconds` (an emulated dtype: bf16 without
    hardware support runs ~50x slower than fp32), the side is halved until they fit.
    """

    dtype = getattr(torch, dtype_name)

    cpu_times: list[float] = []

    def timed(n: int, count: int, pick=statistics.median) -> float:
        a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
        torch.mm(a, b)  # warm-up: allocation, kernel selection, thread pool
        times = []
        cpu_times.clear()
        for _ in range(count):
            sync(device)
            began, cpu_began = time.perf_counter(), time.process_time()
            torch.mm(a, b)
            sync(device)
            times.append(time.perf_counter() - began)
            cpu_times.append(time.process_time() - cpu_began)
        return pick(times)

    n = size
    if dtype != torch.float32:  # fp32 is the reference: always at full size
        probe = min(256, size)
        rate = 2.0 * probe**3 / timed(probe, 3, min)
        while n > probe and 2.0 * n**3 / rate * (repeats + 1) > cap_seconds:
            n //= 2
    seconds = timed(n, repeats)
    return {"gflops": 2.0 * n**3 / seconds / 1e9, "size": n,
            "gflops_cpu": 2.0 * n**3 / max(statistics.median(cpu_times), 1e-9) / 1e9}


def sync(device) -> None:
    """Wait for queued GPU work (a no-op on CPU, where every op has finished when it returns)."""

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def reset_peak_rss() -> None:
    """Start a new peak-RSS window, so a job run in this process reports its own peak (Linux:
    writing 5 to /proc/self/clear_refs resets VmHWM; elsewhere the peak stays the process's)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    """This process's peak resident set size since the last `reset_peak_rss` (Linux: VmHWM), or
    since it started (ru_maxrss: kB on Linux, bytes on macOS)."""
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
