"""Checkpoints that can be trusted: checksummed, self-describing, and loaded without executing code.

File layout: one header line `PICOLLM-CKPT <sha256 of payload>\\n`, then the payload written by
`torch.save`. The payload carries the model's family and config and the tokenizer identity, so
loading a checkpoint into the wrong model, size or vocab is reported instead of half-working.
Loading uses `torch.load(weights_only=True)` only.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from picollm.errors import PicoError
from picollm.io import atomic_open

MAGIC = b"PICOLLM-CKPT "
HEADER_LEN = len(MAGIC) + 64 + 1


def save_checkpoint(path: str | Path, payload: dict) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    with atomic_open(path, "wb") as handle:
        handle.write(MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n")
        handle.write(body)


def load_checkpoint(path: str | Path, *, tokenizer_identity: str | None = None, expect: dict | None = None) -> dict:
    """Verify and load. `expect` maps payload keys (e.g. family, config) to required values."""
    path = Path(path)
    if not path.is_file():
        raise PicoError(f"checkpoint {path} does not exist")
    data = path.read_bytes()
    header, body = data[:HEADER_LEN], data[HEADER_LEN:]
    if not header.startswith(MAGIC) or not header.endswith(b"\n"):
        raise PicoError(f"{path} is not a pico-llm checkpoint (bad header); it will not be loaded")
    if hashlib.sha256(body).hexdigest().encode() != header[len(MAGIC) : -1]:
        raise PicoError(f"{path} is truncated or corrupted (checksum mismatch); it will not be loaded")
    try:
        payload = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as err:  # a valid checksum over an unloadable body: a foreign file
        raise PicoError(f"{path} could not be read as a weights-only checkpoint: {err}") from None
    if tokenizer_identity is not None and payload.get("tokenizer") != tokenizer_identity:
        raise PicoError(
            f"{path} was trained with another tokenizer (identity {str(payload.get('tokenizer'))[:12]}..., "
            f"current {tokenizer_identity[:12]}...); retrain it with `dvc repro`"
        )
    for key, wanted in (expect or {}).items():
        if payload.get(key) != wanted:
            raise PicoError(f"{path} holds {key} {payload.get(key)!r}, but {wanted!r} was expected; it belongs to another model")
    return payload
