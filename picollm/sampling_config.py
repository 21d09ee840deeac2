"""`SamplingConfig`: how generation picks each next token (see picollm/sampling.py for the rules).

Kept free of torch, so validating params.yaml (which checks every sampling setting) does not cost
the stages that never touch a tensor the ~1.3 s of importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from picollm.errors import PicoError


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class SamplingConfig:
    """How to pick the next token. `greedy=True` ignores the other fields (they are still checked)."""

    greedy: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not (_is_number(self.temperature) and math.isfinite(self.temperature) and self.temperature > 0):
            raise PicoError(f"temperature={self.temperature!r} is not allowed; it must be a finite number > 0")
        if self.top_k is not None and (not isinstance(self.top_k, int) or isinstance(self.top_k, bool) or self.top_k < 1):
            raise PicoError(f"top_k={self.top_k!r} is not allowed; it must be an integer >= 1, or unset for no limit")
        if not (_is_number(self.top_p) and 0.0 < self.top_p <= 1.0):
            raise PicoError(f"top_p={self.top_p!r} is not allowed; it must lie in (0, 1]")

    @property
    def label(self) -> str:
        if self.greedy:
            return "greedy"
        parts = [f"p={self.top_p:g}"]
        if self.temperature != 1.0:
            parts.append(f"T={self.temperature:g}")
        if self.top_k is not None:
            parts.append(f"k={self.top_k}")
        return ",".join(parts)
