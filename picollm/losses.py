"""The training loss: mean next-token cross-entropy, in float32 even for bf16 logits, with no avoidable (rows, vocab) buffer."""

from __future__ import annotations

import math

import torch

BLOCK_ELEMENTS = 1 << 18  # a block of float32 log-probabilities (1 MiB) stays in the CPU's cache
MIN_BLOCK_ROWS = 32  # with a large vocabulary, fewer rows per block cost more in Python than in memory


def _cpu_gradient_(logp: torch.Tensor, targets: torch.Tensor, scale: float) -> torch.Tensor:
    """scale * (softmax - one_hot(targets)), written over `logp` (rows, vocab) in one pass, with
    the positive scale folded into the exponent."""
    grad = logp.add_(math.log(scale)).exp_() if scale > 0 else logp.exp_().mul_(scale)
    grad[torch.arange(logp.size(0)), targets] -= scale
    return grad


class _CrossEntropy(torch.autograd.Function):
    """`F.cross_entropy(logits, targets)` (mean over rows) whose backward makes no new buffer.

    The forward keeps the log-probabilities, as torch's does; the backward turns them, in place
    and in one pass, into the gradient scale * (softmax - one_hot), with scale = grad / rows
    folded into the exponent. torch's backward instead fills a zero (rows, vocab) tensor for the
    NLL gradient and allocates another for the log-softmax one; a whole CPU training step is
    measurably faster for it (docs/performance.md). A second backward through the same graph (retain_graph) is refused.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(logits, dim=-1)
        ctx.save_for_backward(logp, targets)
        ctx.consumed = False
        return -logp.gather(1, targets.unsqueeze(1)).mean()

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        if ctx.consumed:
            raise RuntimeError("cross_entropy's backward reuses its saved log-probabilities; it cannot run twice")
        ctx.consumed = True
        logp, targets = ctx.saved_tensors
        if logp.device.type != "cpu":  # no host sync in the middle of an accelerator's backward
            scale = grad_loss / logp.size(0)
            grad = logp.exp_().mul_(scale)
            grad[torch.arange(logp.size(0), device=logp.device), targets] -= scale
            return grad, None
        return _cpu_gradient_(logp, targets, float(grad_loss) / logp.size(0)), None


class _BlockwiseCrossEntropy(torch.autograd.Function):
    """The same loss and gradient, bit for bit, for bf16 (or fp16) logits on a CPU, one block of
    rows at a time: each block is cast to float32 and log-softmaxed while it sits in cache, so no
    float32 copy of all the logits is made; the backward recomputes each block's log-softmax
    (cheaper there than keeping it) and writes the gradient in the logits' dtype. Casting all the
    logits to float32 first, and the gradient back, cost about as much as the head's matmul
    (docs/performance.md)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        picked = torch.empty(logits.size(0), dtype=torch.float32)
        for block in _row_blocks(logits):
            logp = torch.log_softmax(logits[block].float(), dim=-1)
            picked[block] = logp.gather(1, targets[block].unsqueeze(1)).squeeze(1)
        ctx.save_for_backward(logits, targets)
        return -picked.mean()

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        logits, targets = ctx.saved_tensors
        scale = float(grad_loss) / logits.size(0)
        grad = torch.empty_like(logits)
        for block in _row_blocks(logits):
            grad[block] = _cpu_gradient_(torch.log_softmax(logits[block].float(), dim=-1), targets[block], scale)
        return grad, None


def _row_blocks(logits: torch.Tensor) -> list[slice]:
    rows = max(MIN_BLOCK_ROWS, BLOCK_ELEMENTS // logits.size(1))
    return [slice(start, start + rows) for start in range(0, logits.size(0), rows)]


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss of logits (rows, vocab) against target ids (rows,), computed in
    float32 when the logits are bf16 or fp16; see _CrossEntropy and _BlockwiseCrossEntropy."""
    reduced = logits.dtype in (torch.bfloat16, torch.float16)
    if not torch.is_grad_enabled() or not logits.requires_grad:
        return torch.nn.functional.cross_entropy(logits.float() if reduced else logits, targets)
    if reduced and logits.device.type == "cpu":
        return _BlockwiseCrossEntropy.apply(logits, targets)
    return _CrossEntropy.apply(logits.float() if reduced else logits, targets)
