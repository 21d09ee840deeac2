"""Decoding's few-row matmuls on every core: one slab of each weight per thread.

Decoding one token multiplies a single row of activations by every weight matrix (a short
prompt's prefill, or a few samples at once, a few rows): a matrix-vector product that reads each
weight once for 2 FLOPs per row, so it is bound by how fast the weights stream in from memory. The BLAS runs such a
product on one core, which leaves the other cores' share of the memory bandwidth unused. Cutting
the weight's output rows into one slab per thread and multiplying the slabs as one batched matmul
lets each core stream its own slab (docs/performance.md, "Decoding").

The slabs are views of the weight (nothing is copied or kept), and each output element is the
same dot product that `F.linear` computes, so where both calls reach the same BLAS kernel the
result is bitwise equal and no decoded token depends on the split. Which kernel the BLAS picks
depends on the CPU, the thread count and the row count, in no pattern one could write down
(docs/performance.md has a scan), so the equality is not assumed: the first split of each shape
is checked against the plain call on random rows, and a shape that differs is never split in
this process. A kernel's summation order does not depend on the data, so one check per shape
settles it. Beyond that check the split asks for what makes it pay and what the kernels need to
agree at all: at most SPLIT_MAX_ROWS rows (past that, a prefill's other work outweighs what the
split saves), slabs of at least SLAB_MIN_WEIGHTS (torch multiplies small matrices with its own
code, not the BLAS) and of a multiple of SLAB_ROW_MULTIPLE rows (the BLAS sums a trailing block of
rows its own way, so a slab must end where the plain call's blocks end).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SPLIT_MAX_ROWS = 16
SLAB_MIN_WEIGHTS = 16384
SLAB_ROW_MULTIPLE = 64

# (n_out, n_in, rows, slabs, has a bias, threads) -> whether the split gave the plain call's bits
_split_is_exact: dict[tuple[int, int, int, int, bool, int], bool] = {}


def decode_parts(idx: torch.Tensor) -> int:
    """At most how many slabs each weight is cut into for a step over token ids `idx` (B, T): one
    per thread for up to SPLIT_MAX_ROWS tokens on a CPU in float32, 1 (no split) otherwise.
    Autocast is left alone: its bf16 matmuls take other kernels."""
    if idx.numel() > SPLIT_MAX_ROWS or idx.device.type != "cpu" or torch.is_autocast_enabled("cpu"):
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


def split_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, slabs: int) -> torch.Tensor:
    """`F.linear(x, weight, bias)` for x of (rows, n_in), as `slabs` slabs of the weight's output
    rows in one batched matmul."""
    rows, n_in = x.shape
    slab_rows = weight.size(0) // slabs
    weights = weight.view(slabs, slab_rows, n_in).transpose(1, 2)  # (slabs, n_in, slab_rows)
    inputs = x.unsqueeze(0).expand(slabs, rows, n_in)
    if bias is None:
        out = torch.bmm(inputs, weights)
    else:
        out = torch.baddbmm(bias.view(slabs, 1, slab_rows), inputs, weights)
    # (slabs, rows, slab_rows) -> (rows, n_out): each row's outputs slab after slab.
    return out.transpose(0, 1).reshape(rows, -1)


def split_is_exact(weight: torch.Tensor, bias: torch.Tensor | None, rows: int, slabs: int) -> bool:
    """Whether `split_linear` gives `F.linear`'s bits for this shape here: checked once per shape
    and thread count, on this weight (no copy of it is made) and random rows from a generator of
    its own (the global one, which sampling draws from, is not touched). A weight whose products
    are all zero would prove nothing, so it counts as inexact."""
    key = (*weight.shape, rows, slabs, bias is not None, torch.get_num_threads())
    if key not in _split_is_exact:
        with torch.no_grad():
            x = torch.rand(rows, weight.size(1), generator=torch.Generator().manual_seed(0)).sub_(0.5)
            plain = F.linear(x, weight, bias)
            split = split_linear(x, weight, bias, slabs)
        _split_is_exact[key] = bool(plain.any()) and torch.equal(split, plain)
    return _split_is_exact[key]


def linear(module: nn.Linear, x: torch.Tensor, parts: int = 1) -> torch.Tensor:
    """`module(x)`, bit for bit; with `parts` > 1 and at most SPLIT_MAX_ROWS rows of x, computed
    as `slab_count` slabs of the weight in one batched matmul where that count is over 1 and the
    split is exact for this shape (`split_is_exact`)."""
    weight, bias = module.weight, module.bias
    n_out, n_in = weight.shape
    rows = x.numel() // n_in
    if parts <= 1 or not 0 < rows <= SPLIT_MAX_ROWS or x.size(-1) != n_in:
        return module(x)  # (which also raises on a wrong width)
    if weight.dtype != torch.float32 or x.dtype != torch.float32 or not weight.is_contiguous():
        return module(x)
    slabs = slab_count(n_out, n_in, parts)
    if slabs == 1 or not split_is_exact(weight, bias, rows, slabs):
        return module(x)
    return split_linear(x.reshape(rows, n_in), weight, bias, slabs).view(*x.shape[:-1], n_out)
