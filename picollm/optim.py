"""The optimizers of the training loop: AdamW alone, or Muon on the hidden matrices with AdamW on the rest.

`train.optimizer: adamw` is nanoGPT's recipe: AdamW everywhere, weight decay on matrices only.

`train.optimizer: muon` follows modded-nanogpt and Keller Jordan's Muon: the hidden 2-D weight
matrices (attention, MLP and recurrent weights) are updated by `torch.optim.Muon`, whose step is
the momentum orthogonalised by a few Newton-Schulz iterations (in float32 on a CPU: `Muon` below);
embeddings, the output head, norms and biases keep AdamW, where an orthogonalised update has no
meaning (a gather, a per-coordinate gain) or hurts (the head). `adjust_lr_fn="match_rms_adamw"` scales Muon's step to
AdamW's update size, so both groups follow the same learning-rate schedule.

Both are served as one object with the `torch.optim.Optimizer` surface the loop uses
(`param_groups`, `step`, `zero_grad`, `state_dict`, `load_state_dict`), so resuming, DDP and the
bench treat them alike.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from picollm.config import TrainParams

OPTIMIZERS = ("adamw", "muon")


def hidden_matrices(model: nn.Module) -> list[nn.Parameter]:
    """The 2-D weights that act on hidden states: neither an embedding table nor the output head.

    A head tied to the token embedding is the embedding, so it stays out too.
    """
    excluded = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    head = getattr(model, "head", None)
    if isinstance(head, nn.Linear):
        excluded.add(id(head.weight))
    return [p for p in model.parameters() if p.requires_grad and p.dim() == 2 and id(p) not in excluded]


def _adamw(params: list[nn.Parameter], train: TrainParams) -> torch.optim.AdamW:
    # Decay weight matrices, not biases or norm gains (nanoGPT's rule).
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": train.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    # The fused kernel updates every tensor in one pass; on CPU it is far faster than the
    # foreach implementation, which falls back to one small op per tensor there (docs/performance.md).
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    kind = {"fused": True} if fused else {"foreach": True}
    return torch.optim.AdamW(groups, lr=train.lr, betas=(train.beta1, train.beta2), **kind)


def newton_schulz(update: torch.Tensor, coefficients: tuple[float, float, float], steps: int, eps: float,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """torch.optim.Muon's quintic Newton-Schulz orthogonalisation, computed in `dtype`."""
    a, b, c = coefficients
    x = update.to(dtype)
    if update.size(0) > update.size(1):
        x = x.T
    x = x / x.norm().clamp(min=eps)  # spectral norm at most 1
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if update.size(0) > update.size(1) else x


class Muon(torch.optim.Muon):
    """`torch.optim.Muon` (same state, same update) with the Newton-Schulz iterations in float32 on
    a CPU, in bfloat16 (as torch) on a GPU, or in `dtype` where given.

    On an AVX2 CPU, and on any CPU under the portable kernels (picollm/kernels.py), bf16 matmuls
    are emulated at about 1% of the float32 peak and torch's bf16 iterations cost more than the rest
    of the step; in float32 they are the same computation on every CPU (docs/reliability.md).
    """

    def __init__(self, params, dtype: torch.dtype | None = None, **kwargs):
        super().__init__(params, **kwargs)
        if any(g["adjust_lr_fn"] != "match_rms_adamw" for g in self.param_groups):
            raise ValueError("picollm's Muon scales its step as AdamW's (adjust_lr_fn='match_rms_adamw') only")
        self.dtype = dtype

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ValueError("picollm's Muon takes no closure")
        for group in self.param_groups:
            params, grads, buffers = [], [], []
            self._init_group(group, params, grads, buffers)
            momentum, lr = group["momentum"], group["lr"]
            for param, grad, buffer in zip(params, grads, buffers):
                buffer.lerp_(grad, 1 - momentum)
                update = grad.lerp(buffer, momentum) if group["nesterov"] else buffer
                dtype = self.dtype or (torch.bfloat16 if param.is_cuda else torch.float32)
                update = newton_schulz(update, group["ns_coefficients"], group["ns_steps"], group["eps"], dtype)
                param.mul_(1 - lr * group["weight_decay"])
                param.add_(update, alpha=-lr * (0.2 * math.sqrt(max(param.shape[:2]))))  # match_rms_adamw
        return None


class MuonWithAdamW:
    """Muon on `hidden` matrices, AdamW on every other trainable parameter, stepped together."""

    def __init__(self, model: nn.Module, train: TrainParams):
        hidden = hidden_matrices(model)
        hidden_ids = {id(p) for p in hidden}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in hidden_ids]
        self.muon = Muon(
            hidden, lr=train.lr, weight_decay=train.weight_decay, momentum=train.muon_momentum,
            adjust_lr_fn="match_rms_adamw",
        )
        self.adamw = _adamw(rest, train)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [*self.muon.param_groups, *self.adamw.param_groups]

    def step(self) -> None:
        self.muon.step()
        self.adamw.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none=set_to_none)
        self.adamw.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"muon", "adamw"}:
            raise ValueError(f"an optimizer state with keys {sorted(state)} is not a Muon + AdamW state")
        self.muon.load_state_dict(state["muon"])
        self.adamw.load_state_dict(state["adamw"])


def make_optimizer(model: nn.Module, train: TrainParams):
    """The optimizer `train.optimizer` names, over the model's trainable parameters."""
    if train.optimizer == "muon":
        return MuonWithAdamW(model, train)
    return _adamw([p for p in model.parameters() if p.requires_grad], train)
