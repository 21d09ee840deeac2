"""Decoding's one-row matmuls on every core: one slab of each weight per thread.

Decoding one token multiplies a single row of activations by every weight matrix: a
matrix-vector product that reads each weight once for 2 FLOPs, so it is bound by how fast the
weights stream in from memory. The BLAS runs a one-row `F.linear` on one core, which leaves the
other cores' share of the memory bandwidth unused. Cutting the weight's output rows into one slab
per thread and multiplying the slabs as one batched matmul lets each core stream its own slab
(docs/performance.md, "Decoding").

The slabs are views of the weight (nothing is copied or kept), and each output element is the
same dot product, over the same inputs in the same order, that `F.linear` computes, so the result
is bitwise equal and no decoded token depends on the thread count through this path
(tests/test_row_split.py). That holds only where both calls reach the same BLAS kernel, which is
why the split is this narrow: one row (for a few rows the BLAS picks different kernels for the
batched and the plain call), slabs of at least SLAB_MIN_WEIGHTS (torch multiplies small matrices
with its own code, not the BLAS), and slabs of a multiple of SLAB_ROW_MULTIPLE rows (the BLAS
handles a trailing block of rows with its own summation, so a slab must end where the plain
call's blocks end).
"""

from __future__ import annotations

import torch
from torch import nn

SLAB_MIN_WEIGHTS = 16384
SLAB_ROW_MULTIPLE = 64


def decode_parts(idx: torch.Tensor) -> int:
    """At most how many slabs each weight is cut into for a step over token ids `idx` (B, T): one
    per thread for a single token on a CPU in float32, 1 (no split) otherwise. Autocast is left
    alone: its bf16 matmuls take other kernels, for which the equality is not established."""
    if idx.numel() != 1 or idx.device.type != "cpu" or torch.is_autocast_enabled("cpu"):
        return 1
    return torch.get_num_threads()


def slab_count(n_out: int, n_in: int, parts: int) -> int:
    """The most slabs, at most `parts` (halving from it), that a weight of n_out x n_in rows cuts
    into as the module docstring requires; 1 when none does (the weight is not split)."""
    while parts > 1:
        rows, uneven = divmod(n_out, parts)
        if not uneven and rows % SLAB_ROW_MULTIPLE == 0 and rows * n_in >= SLAB_MIN_WEIGHTS:
            return parts
        parts //= 2
    return 1


def linear(module: nn.Linear, x: torch.Tensor, parts: int = 1) -> torch.Tensor:
    """`module(x)`; with `parts` > 1 and a single row of x, computed as `slab_count` slabs of the
    weight in one batched matmul (unless that count is 1)."""
    weight, bias = module.weight, module.bias
    n_out, n_in = weight.shape
    if parts <= 1 or x.numel() != n_in or weight.dtype != torch.float32 or not weight.is_contiguous():
        return module(x)
    parts = slab_count(n_out, n_in, parts)
    if parts == 1:
        return module(x)
    slab_rows = n_out // parts
    slabs = weight.view(parts, slab_rows, n_in).transpose(1, 2)  # (parts, n_in, slab_rows)
    rows = x.reshape(1, 1, n_in).expand(parts, 1, n_in)
    if bias is None:
        out = torch.bmm(rows, slabs)
    else:
        out = torch.baddbmm(bias.view(parts, 1, slab_rows), rows, slabs)
    # (parts, 1, slab_rows) holds the outputs in order: slab after slab.
    return out.view(*x.shape[:-1], n_out)
