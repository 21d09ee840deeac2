"""pico-llm: train, compare and sample a family of small language models."""

from picollm import kernels as _kernels

__version__ = "0.1.0"

_kernels.apply()  # before anything imports torch: its kernel choice is made once, on first use
