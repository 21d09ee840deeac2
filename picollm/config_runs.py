"""Params sections `train`, `evaluate`, `interpret`, `speedrun` and `sample`: how models train and are read."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from picollm.config_base import Strict
from picollm.errors import PicoError


# ---------------------------------------------------------------- training
class TrainParams(Strict):
    steps: int = Field(300, ge=1)
    batch_size: int = Field(16, ge=1, description="global batch, across processes and accumulation")
    micro_batch_size: int = Field(0, ge=0, description="rows per forward pass per process; 0 = batch_size / processes")
    block_size: int = Field(128, ge=2, le=65536)
    lr: float = Field(3e-3, gt=0.0, le=1.0)
    optimizer: Literal["adamw", "muon"] = Field("adamw", description="muon: Muon on hidden matrices, AdamW on the rest")
    muon_momentum: float = Field(0.95, ge=0.0, lt=1.0)
    snapshots: bool = Field(False, description="keep the weights at every eval_every step (for interpret@<model>)")
    crop: Literal["random", "story"] = Field("random", description="story: every crop starts at a document's first token")
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0)
    warmup_steps: int = Field(30, ge=0)
    weight_decay: float = Field(0.1, ge=0.0)
    beta1: float = Field(0.9, ge=0.0, lt=1.0)
    beta2: float = Field(0.99, ge=0.0, lt=1.0)
    grad_clip: float = Field(1.0, ge=0.0)
    log_every: int = Field(25, ge=1)
    eval_every: int = Field(100, ge=1)
    eval_batches: int = Field(8, ge=1)
    checkpoint_every: int = Field(100, ge=1)
    device: Literal["auto", "cpu", "cuda", "mps"] = "cpu"
    allow_device_fallback: bool = False
    dtype: Literal["float32", "bfloat16", "auto"] = "float32"  # auto: bf16 where native (device.resolve_dtype)
    compile: bool = False
    threads: int = Field(0, ge=0, description="torch intra-op threads; 0 keeps torch's default")
    nproc: int = Field(1, ge=1, le=1024, description="data-parallel processes (torchrun); 1 = plain python")

    def merged(self, overrides: dict[str, Any] | None) -> TrainParams:
        """This section with a model's `train:` overrides applied (validated the same way)."""
        return TrainParams.model_validate({**self.model_dump(), **(overrides or {})})


# ---------------------------------------------------------------- evaluation
class EvaluateParams(Strict):
    prompt: str = "Once upon a time"
    max_new_tokens: int = Field(160, ge=1)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    sample_seed: int = 0
    num_samples: int = Field(2, ge=1, le=100)


# ---------------------------------------------------------------- interpretability (interpret@<model>)
class InterpretParams(Strict):
    stories: int = Field(100, ge=1, le=100_000, description="the first N validation stories score every snapshot")


# ---------------------------------------------------------------- speedrun (stage `speedrun`)
class SpeedrunParams(Strict):
    model: str = Field("mingpt", description="the entry of models: whose recipe races nanoGPT's")
    target_floor_ratio: float = Field(2.5, gt=1.0, le=100.0, description="the target: this many times the entropy floor (bpb)")
    baseline: dict[str, Any] = Field(default_factory=lambda: {"optimizer": "adamw", "crop": "random", "lr": 0.006},
                                     description="overrides of the model's train params: nanoGPT's recipe")
    baseline_budget: float = Field(1.0, ge=1.0, le=100.0, description="nanoGPT's recipe trains this many times the model's "
                                   "steps, its schedule stretched over them, so that it can reach the target too")

    @field_validator("baseline")
    @classmethod
    def _budget_is_its_own_key(cls, baseline: dict[str, Any]) -> dict[str, Any]:
        if "steps" in baseline:
            raise ValueError("it sets steps; the baseline's steps are speedrun.baseline_budget times the model's")
        return baseline


# ---------------------------------------------------------------- sampling study
class SampleSetting(Strict):
    """One decoding setting of the sampling study; `.sampling` is its `SamplingConfig`."""

    greedy: bool = False
    temperature: float = Field(1.0, gt=0.0, allow_inf_nan=False)
    top_k: int | None = Field(None, ge=1)
    top_p: float = Field(1.0, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _is_a_sampling_config(self) -> SampleSetting:
        try:
            _ = self.sampling  # building it is the check
        except PicoError as err:  # e.g. a bool where a number belongs: one sentence naming the field
            raise ValueError(str(err)) from None
        return self

    @property
    def sampling(self):
        from picollm.sampling_config import SamplingConfig

        return SamplingConfig(greedy=self.greedy, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)


def _default_sample_settings() -> list[SampleSetting]:
    return [SampleSetting(greedy=True), *(SampleSetting(top_p=p) for p in (0.5, 0.8, 0.9, 0.95, 1.0))]


class SampleParams(Strict):
    """The `sample` stage: N samples per model and setting, scored for diversity and quality."""

    prompt: str = "Once upon a time"
    num_samples: int = Field(8, ge=1, le=256, description="samples per (model, setting), decoded as one batch")
    max_new_tokens: int = Field(160, ge=1)
    seed: int = Field(0, ge=0)
    settings: list[SampleSetting] = Field(default_factory=_default_sample_settings, min_length=1)

    @field_validator("settings")
    @classmethod
    def _labels_are_unique(cls, settings: list[SampleSetting]) -> list[SampleSetting]:
        labels = [s.sampling.label for s in settings]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"the setting {repeated[0]!r} is listed twice; each setting must differ")
        return settings
