"""Params section `bench`: what the speed stage times, at what size."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from picollm.config_base import Strict


# ---------------------------------------------------------------- speed (stage `bench`)
def _default_bench_models() -> dict[str, dict[str, Any]]:
    transformer = {"family": "transformer", "d_model": 256, "n_head": 4, "n_layer": 4, "d_ff": 1024}
    return {
        "kgram_onehot": {"family": "kgram", "variant": "onehot", "k": 3, "hidden": 512, "n_hidden_layers": 1},
        "lstm": {"family": "lstm", "d_embed": 128, "hidden": 256, "n_layer": 1},
        "gpt2": {**transformer, "preset": "gpt2"},
    }


def _default_bench_reference() -> dict[str, Any]:
    # nanoGPT's GPT at the configuration measured on these machines (bias off, no dropout).
    return {"family": "transformer", "preset": "gpt2", "bias": False, "dropout": 0.0, "n_layer": 4, "n_head": 4,
            "d_model": 256, "d_ff": 1024}


class BenchGenerationParams(Strict):
    model: str = Field("gpt2", description="the entry of bench.models that is decoded (random weights)")
    prompt: str = "Once upon a time"
    new_tokens: int = Field(256, ge=1, le=4096)
    repeats: int = Field(3, ge=1)


class BenchParams(Strict):
    """Stage `bench`: every rate against this machine's matmul peak, measured in the same process.

    The bench times its own architectures (`models`, at the bench size) on its own generated text
    and tokenizer, so a change to `models:`, `train:` or the corpus leaves its results cached."""

    models: dict[str, dict[str, Any]] = Field(default_factory=_default_bench_models, min_length=1,
                                              description="the architectures timed, each a spec like an entry of models:")
    vocab_size: int = Field(2048, ge=257, le=200_000, description="of the BPE tokenizer the bench trains on its text")
    device: Literal["auto", "cpu", "cuda", "mps"] = "cpu"
    optimizer: Literal["adamw", "muon"] = "adamw"
    threads: int = Field(0, ge=0, description="torch threads; 0 keeps torch's default (one per core)")
    batch_size: int = Field(16, ge=1)
    block_size: int = Field(256, ge=2, le=65536)
    reference: dict[str, Any] | None = Field(default_factory=_default_bench_reference, description="null: no reference row")
    reference_vocab_size: int = Field(4096, ge=2)
    warmup_steps: int = Field(2, ge=1)
    repeats: int = Field(3, ge=1, description="timed repetitions, each right after its own peak measurement; medians reported")
    min_seconds: float = Field(0.5, ge=0.0, description="a repetition runs whole steps until this much time has passed")
    peak_size: int = Field(1024, ge=64, le=8192, description="side of the square matrices of the peak measurement")
    bfloat16: Literal["auto", "always", "never"] = Field("auto", description="auto: only where the CPU has native bf16")
    compile: bool = Field(False, description="also time torch.compile'd training: the reference in float32, each "
                          "Transformer in bf16 where bf16 is measured (compiling takes ~1 min each)")
    isolate: bool = Field(False, description="one subprocess per model: nothing held from earlier jobs in its peak RSS")
    generation: BenchGenerationParams = BenchGenerationParams()
    tokenizer_mb: float = Field(2.0, gt=0.0, le=1024.0, description="megabytes of generated stories encoded per repetition")
