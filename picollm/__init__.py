"""pico-llm: train, compare and sample a family of small language models."""

__version__ = "0.1.0"
