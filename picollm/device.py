"""Device, precision and process-group setup shared by training, evaluation and benchmarks."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from picollm.errors import PicoError


def resolve_device(requested: str, allow_fallback: bool = False, announce: bool = True) -> torch.device:
    """`auto` picks CUDA, then MPS, then CPU. An unavailable explicit choice is an error unless fallback is allowed."""
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
        "cpu": True,
    }
    if requested == "auto":
        chosen = next(name for name in ("cuda", "mps", "cpu") if available[name])
    elif available.get(requested, False):
        chosen = requested
    elif allow_fallback:
        chosen = "cpu"
    else:
        raise PicoError(
            f"train.device = {requested!r} is not available on this machine; use 'auto' or 'cpu', "
            "or set train.allow_device_fallback: true"
        )
    if announce:
        print(f"device: {chosen} (asked for {requested})", file=sys.stderr)
    return torch.device(chosen)


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 matmuls run in hardware here: CUDA's answer, or oneDNN's on a CPU (AVX512-BF16
    or AMX, and not pinned to the portable AVX2 kernels, under which it answers no)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_dtype(requested: str, device: torch.device, announce: bool = True) -> str:
    """`auto` is bf16 autocast where bf16 is native on `device`, float32 elsewhere (emulated bf16
    runs at a few percent of the float32 peak); an explicit choice stays as asked."""
    if requested != "auto":
        return requested
    chosen = "bfloat16" if native_bf16(device) else "float32"
    if announce:
        print(f"dtype: {chosen} (asked for auto; native bf16 on {device.type}: {chosen == 'bfloat16'})", file=sys.stderr)
    return chosen


def autocast(device: torch.device, dtype: str):
    """bf16 autocast where asked; fp32 runs with no context at all."""
    if dtype == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass(frozen=True)
class ProcessGroup:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_process_group(device: torch.device) -> ProcessGroup:
    """Join the torchrun process group when launched by torchrun (WORLD_SIZE > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return ProcessGroup()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    group = ProcessGroup(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(group.local_rank)
    return group


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    # Deterministic kernels where torch has them; warn (not fail) for ops that lack one on GPU.
    # The eager switch only: torch.use_deterministic_algorithms also sets inductor's flag, and
    # importing inductor costs ~1.7 s in every process (most never compile); see compile_model.
    torch._C._set_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def compile_unavailable(device_type: str) -> str | None:
    """Why torch.compile cannot run here, or None: on a CPU, inductor compiles C++ and needs a compiler."""
    if device_type != "cpu" or os.environ.get("CXX") or any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++")):
        return None
    return "no C++ compiler (g++, c++ or clang++; or set CXX), which torch.compile needs on a CPU"


def compile_model(module: torch.nn.Module) -> torch.nn.Module:
    """`torch.compile(module)` with inductor's deterministic mode on, which seed_everything leaves
    to this function so that processes that never compile never import inductor."""
    reason = compile_unavailable(next(module.parameters()).device.type)
    if reason:
        raise PicoError(f"train.compile = true cannot run on this machine: {reason}; set train.compile: false")
    import torch._inductor.config as inductor_config

    inductor_config.deterministic = torch.are_deterministic_algorithms_enabled()
    return torch.compile(module)
