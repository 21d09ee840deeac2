"""Checkpoints that can be trusted: checksummed, self-describing, and loaded without executing code.

File layout: one header line `PICOLLM-CKPT <sha256 of payload>\\n`, then the payload written by
`torch.save`. The payload carries the model's family and config and the tokenizer identity, so
loading a checkpoint into the wrong model, size or vocab is reported instead of half-working.
Loading uses `torch.load(weights_only=True)` only.
"""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

import torch

from picollm.errors import PicoError
from picollm.io import atomic_open

MAGIC = b"PICOLLM-CKPT "
HEADER_LEN = len(MAGIC) + 64 + 1
# Every checkpoint (a resume point or a finished model) carries these.
REQUIRED_KEYS = ("family", "config", "tokenizer", "model")


def save_checkpoint(path: str | Path, payload: dict) -> None:
    buffer = io.BytesIO()
    torch.save(_canonical(payload), buffer)
    body = buffer.getvalue()
    with atomic_open(path, "wb") as handle:
        handle.write(MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n")
        handle.write(body)


def _canonical(value):
    """The payload with fresh containers and interned strings, so its bytes depend on values only.

    Pickle writes an object seen before as a back-reference, so two equal payloads could differ
    in bytes by which of their strings happen to be one object: a history resumed from a
    checkpoint holds its own copies of "train_loss", an uninterrupted run the interned literal.
    Tensors are kept as they are (a shared storage, e.g. tied weights, is meant to be shared).
    """
    if isinstance(value, str):
        return sys.intern(str(value))
    if isinstance(value, dict):
        copy = type(value)((_canonical(key), _canonical(item)) for key, item in value.items())
        if getattr(value, "__dict__", None):  # an OrderedDict state_dict carries `_metadata`
            copy.__dict__.update(_canonical(vars(value)))
        return copy
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    if isinstance(value, tuple) and type(value) is tuple:
        return tuple(_canonical(item) for item in value)
    return value


def load_checkpoint(path: str | Path, *, tokenizer_identity: str | None = None, expect: dict | None = None) -> dict:
    """Verify and load. `expect` maps payload keys (e.g. family, config) to required values."""
    path = Path(path)
    if not path.is_file():
        raise PicoError(f"checkpoint {path} does not exist")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise PicoError(f"checkpoint {path} could not be read ({err.strerror or err}); check that it is readable") from None
    header, body = data[:HEADER_LEN], data[HEADER_LEN:]
    if not header.startswith(MAGIC):
        raise PicoError(f"{path} is not a pico-llm checkpoint (bad header); it will not be loaded")
    if len(data) <= HEADER_LEN or not header.endswith(b"\n"):
        raise PicoError(f"{path} is truncated or corrupted (its header is incomplete); it will not be loaded")
    if hashlib.sha256(body).hexdigest().encode() != header[len(MAGIC) : -1]:
        raise PicoError(f"{path} is truncated or corrupted (checksum mismatch); it will not be loaded")
    try:
        payload = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception:  # a valid checksum over an unloadable body: a foreign or malicious file
        # torch's own message is several sentences advising to turn the weights-only safety off: not ours to give.
        raise PicoError(
            f"{path} could not be read as a weights-only checkpoint (it is not a torch file, or it holds objects "
            "other than tensors and plain data); it will not be loaded"
        ) from None
    missing = [key for key in REQUIRED_KEYS if not isinstance(payload, dict) or key not in payload]
    if missing:
        raise PicoError(f"{path} lacks the checkpoint entries {missing}; it was not written by pico-llm and will not be loaded")
    if tokenizer_identity is not None and payload.get("tokenizer") != tokenizer_identity:
        raise PicoError(
            f"{path} was trained with another tokenizer (identity {str(payload.get('tokenizer'))[:12]}..., "
            f"current {tokenizer_identity[:12]}...); retrain it with `dvc repro`"
        )
    for key, wanted in (expect or {}).items():
        found = payload.get(key)
        if found != wanted:
            raise PicoError(f"{path} holds {key} {_difference(found, wanted)}; it belongs to another model or run and will not be loaded")
    return payload


def _difference(found: object, wanted: object) -> str:
    """The first differing field of two configs, or the two values, kept to one short phrase."""
    if isinstance(found, dict) and isinstance(wanted, dict):
        for field in sorted(set(found) | set(wanted), key=str):
            if found.get(field) != wanted.get(field):
                return f"with {field}={found.get(field)!r}, but {field}={wanted.get(field)!r} was expected"
    shorten = lambda value: (text if len(text := repr(value)) <= 80 else text[:77] + "...")  # noqa: E731
    return f"{shorten(found)}, but {shorten(wanted)} was expected"
