"""The training loss: mean next-token cross-entropy whose backward allocates no (rows, vocab) buffer."""

from __future__ import annotations

import math

import torch


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
        rows = torch.arange(logp.size(0), device=logp.device)
        if logp.device.type != "cpu":  # no host sync in the middle of an accelerator's backward
            scale = grad_loss / logp.size(0)
            grad = logp.exp_().mul_(scale)
            grad[rows, targets] -= scale
            return grad, None
        scale = float(grad_loss) / logp.size(0)
        grad = logp.add_(math.log(scale)).exp_() if scale > 0 else logp.exp_().mul_(scale)
        grad[rows, targets] -= scale
        return grad, None


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss of logits (rows, vocab) against target ids (rows,); see _CrossEntropy."""
    if not torch.is_grad_enabled() or not logits.requires_grad:
        return torch.nn.functional.cross_entropy(logits, targets)
    return _CrossEntropy.apply(logits, targets)
