"""The bench's plan: which models it times and at what size, checked before any stage runs."""

from __future__ import annotations

from typing import Any

from picollm.config import Params
from picollm.errors import PicoError
from picollm.models.registry import model_config


def bench_spec(params: Params, name: str) -> dict[str, Any]:
    """bench.models.<name>: an architecture at the bench size."""
    return dict(params.bench.models[name])


def bench_models(params: Params) -> list[str]:
    return list(params.bench.models)


def check_bench(params: Params) -> None:
    """Every architecture the bench times builds at the bench size; the decoded one is among them."""
    bench = params.bench
    if bench.generation.model not in bench.models:
        raise PicoError(
            f"bench.generation.model = {bench.generation.model!r} is not an entry of bench.models; "
            f"defined: {sorted(bench.models)}"
        )
    for name, spec in bench.models.items():
        model_config(spec, vocab_size=bench.vocab_size, block_size=bench.block_size, pad_id=0, key=f"bench.models.{name}")
    if bench.reference is not None:
        model_config(bench.reference, vocab_size=bench.reference_vocab_size, block_size=bench.block_size, pad_id=0,
                     key="bench.reference")
REFERENCE_NAME = "gpt2@reference"
