"""The one params schema: `params.yaml` is validated here, whole, before any stage does work.

Every section is a strict pydantic model (unknown keys are errors). A failure becomes one
`PicoError` sentence naming the file, the dotted key, the offending value and what is allowed.
Model architectures are validated by the model registry itself, so a preset override that
breaks its constraints (d_model not divisible by heads, > 10 blocks, ...) is caught here too.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from picollm.errors import PicoError

PARAMS_FILE = "params.yaml"
GPT2_VOCAB_SIZE = 50257
# 256 byte tokens plus <|endoftext|>: a byte-level BPE cannot be smaller.
MIN_BPE_VOCAB = 257
# A model name becomes a file name (models/<name>.ckpt) and a DVC stage name (train@<name>).
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class Strict(BaseModel):
    # strict: "0.001" is not a number and true is not a seed; inf/nan are never a setting.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# ---------------------------------------------------------------- data
class StoriesParams(Strict):
    count: int = Field(20000, ge=10, le=10_000_000, description="stories to generate")


class TinyStoriesParams(Strict):
    subset: int | None = Field(20000, ge=10, description="first N stories of the train split")
    path: str | None = Field(None, description="local copy in the hub's layout, instead of the hub")


class TextParams(Strict):
    paths: list[str] = Field(default_factory=lambda: ["data/custom"], min_length=1)
    mode: Literal["line", "paragraph"] = "paragraph"


class MixParams(Strict):
    """Custom text mixed into the main source (the design notes' --input_dir / --tinystories_weight)."""

    paths: list[str] = Field(default_factory=list)
    mode: Literal["line", "paragraph"] = "paragraph"
    weight: float = Field(0.0, ge=0.0, le=1.0, description="target share of custom documents")
    limit: int | None = Field(None, ge=1, description="cap on custom documents")


class DataParams(Strict):
    source: Literal["stories", "tinystories", "text"] = "stories"
    stories: StoriesParams = StoriesParams()
    tinystories: TinyStoriesParams = TinyStoriesParams()
    text: TextParams = TextParams()
    mix: MixParams = MixParams()
    val_fraction: float = Field(0.05, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.05, gt=0.0, lt=0.5)


# ---------------------------------------------------------------- tokenizer
class TokenizerParams(Strict):
    kind: Literal["bpe", "gpt2"] = "bpe"
    vocab_size: int = Field(4096, ge=MIN_BPE_VOCAB, le=200_000, description="including <|endoftext|>; bpe only")
    encode_threads: int = Field(2, ge=1, le=256)

    @property
    def effective_vocab_size(self) -> int:
        return GPT2_VOCAB_SIZE if self.kind == "gpt2" else self.vocab_size


# ---------------------------------------------------------------- training
class TrainParams(Strict):
    steps: int = Field(300, ge=1)
    batch_size: int = Field(16, ge=1, description="global batch, across processes and accumulation")
    micro_batch_size: int = Field(0, ge=0, description="rows per forward pass per process; 0 = batch_size / processes")
    block_size: int = Field(128, ge=2, le=65536)
    lr: float = Field(3e-3, gt=0.0, le=1.0)
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
    dtype: Literal["float32", "bfloat16"] = "float32"
    compile: bool = False
    threads: int = Field(0, ge=0, description="torch intra-op threads; 0 keeps torch's default")
    nproc: int = Field(1, ge=1, le=1024, description="data-parallel processes (torchrun); 1 = plain python")

    def merged(self, overrides: dict[str, Any] | None) -> "TrainParams":
        """This section with a model's `train:` overrides applied (validated the same way)."""
        return TrainParams.model_validate({**self.model_dump(), **(overrides or {})})


# ---------------------------------------------------------------- evaluation
class EvaluateParams(Strict):
    prompt: str = "Once upon a time"
    max_new_tokens: int = Field(160, ge=1)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    sample_seed: int = 0
    num_samples: int = Field(2, ge=1, le=100)


# ---------------------------------------------------------------- sampling study
class SampleSetting(Strict):
    """One decoding setting of the sampling study; `.sampling` is its `SamplingConfig`."""

    greedy: bool = False
    temperature: float = Field(1.0, gt=0.0, allow_inf_nan=False)
    top_k: int | None = Field(None, ge=1)
    top_p: float = Field(1.0, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _is_a_sampling_config(self) -> "SampleSetting":
        try:
            self.sampling
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
    workers: int = Field(2, ge=1, le=64, description="processes decoding models in parallel, one torch thread each")

    @field_validator("settings")
    @classmethod
    def _labels_are_unique(cls, settings: list[SampleSetting]) -> list[SampleSetting]:
        labels = [s.sampling.label for s in settings]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"the setting {repeated[0]!r} is listed twice; each setting must differ")
        return settings


# ---------------------------------------------------------------- sweeps (the studies)
# Each list below becomes the axis of a DVC `matrix:` stage (one cached stage per point, named by
# its values), so a point's values must be unique; see dvc.yaml and picollm/sweeps.py.
def _unique(values: list) -> list:
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"the value {repeated[0]} is listed twice; each point of a sweep must differ")
    return values


class SweepParams(Strict):
    """What every sweep has: the models it trains (entries of `models:`) and training overrides."""

    models: list[str] = Field(default_factory=lambda: ["lstm", "gptoss"], min_length=1)
    train: dict[str, Any] = Field(default_factory=dict, description="overrides of train + models.<m>.train for every point")

    @field_validator("models")
    @classmethod
    def _models_unique(cls, models: list[str]) -> list[str]:
        return _unique(models)


class CorpusSizeSweep(SweepParams):
    """Train on the first N documents of the train split, for each N, at a fixed step budget."""

    docs: list[int] = Field(default_factory=lambda: [50, 200, 800, 3200], min_length=1)

    @field_validator("docs")
    @classmethod
    def _docs(cls, docs: list[int]) -> list[int]:
        if min(docs) < 1:
            raise ValueError("every corpus size must be >= 1 document")
        return _unique(docs)


class TrainingBudgetSweep(SweepParams):
    """The same model and corpus trained for base_steps x each multiplier."""

    base_steps: int = Field(12, ge=1)
    multipliers: list[int] = Field(default_factory=lambda: [1, 3, 6], min_length=1)

    @field_validator("multipliers")
    @classmethod
    def _multipliers(cls, multipliers: list[int]) -> list[int]:
        if min(multipliers) < 1:
            raise ValueError("every multiplier must be >= 1")
        return _unique(multipliers)


class OverfittingSweep(SweepParams):
    """Long training on a few train documents, a share of them held out: memorisation, divergence."""

    documents: int = Field(20, ge=5, le=10_000, description="the first N documents of the train split")
    train_fraction: float = Field(0.6, gt=0.0, lt=1.0, description="share of them trained on; the rest is the test set")
    prompt_words: int = Field(8, ge=1, description="samples continue the first words of a document")
    samples: int = Field(3, ge=1, le=100, description="greedy samples from train and from test documents, each")
    max_new_tokens: int = Field(40, ge=1)


class HparamGridSweep(SweepParams):
    """The Cartesian grid of these lists, for every model. `embed` is the width (transformer d_model,
    LSTM d_embed; d_ff and the LSTM hidden size keep their ratio to it); `heads` is the transformer's
    attention heads (the LSTM has none: lstm points differing only in heads train the same model)."""

    embed: list[int] = Field(default_factory=lambda: [64, 128], min_length=1)
    block_size: list[int] = Field(default_factory=lambda: [64], min_length=1)
    layers: list[int] = Field(default_factory=lambda: [1], min_length=1)
    heads: list[int] = Field(default_factory=lambda: [4], min_length=1)
    lr: list[float] = Field(default_factory=lambda: [0.002, 0.006], min_length=1)
    batch_size: list[int] = Field(default_factory=lambda: [8], min_length=1)

    @field_validator("embed", "block_size", "layers", "heads", "lr", "batch_size")
    @classmethod
    def _axis(cls, values: list) -> list:
        if min(values) <= 0:
            raise ValueError("every value must be > 0")
        return _unique(values)


class SweepsParams(Strict):
    eval_docs: int = Field(30, ge=1, description="points are scored on the first N documents of each split")
    corpus_size: CorpusSizeSweep = CorpusSizeSweep()
    training_budget: TrainingBudgetSweep = TrainingBudgetSweep()
    overfitting: OverfittingSweep = OverfittingSweep()
    hparam_grid: HparamGridSweep = HparamGridSweep()


# ---------------------------------------------------------------- speed (stage `bench`)
def _default_bench_sizes() -> dict[str, dict[str, Any]]:
    return {"transformer": {"d_model": 256, "n_head": 4, "d_ff": 1024, "n_layer": 4}, "kgram": {"hidden": 512}, "lstm": {}}


def _default_bench_reference() -> dict[str, Any]:
    # nanoGPT's GPT at the configuration measured on these machines (bias off, no dropout).
    return {"family": "transformer", "preset": "gpt2", "bias": False, "dropout": 0.0, "n_layer": 4, "n_head": 4,
            "d_model": 256, "d_ff": 1024}


class BenchGenerationParams(Strict):
    model: str = Field("gpt2", description="the entry of models: that is decoded (its params size, random weights)")
    new_tokens: int = Field(256, ge=1, le=4096)
    repeats: int = Field(3, ge=1)


class BenchParams(Strict):
    """Stage `bench`: every rate against this machine's matmul peak, measured in the same process."""

    models: list[str] | None = Field(None, description="entries of models: to time; null = all of them")
    threads: int = Field(0, ge=0, description="torch threads; 0 = train.threads (0 there too: torch's default)")
    batch_size: int = Field(16, ge=1)
    block_size: int = Field(256, ge=2, le=65536)
    sizes: dict[Literal["kgram", "lstm", "transformer"], dict[str, Any]] = Field(
        default_factory=_default_bench_sizes, description="the bench size: per family, overrides of each model's spec")
    reference: dict[str, Any] | None = Field(default_factory=_default_bench_reference, description="null: no reference row")
    reference_vocab_size: int = Field(4096, ge=2)
    warmup_steps: int = Field(2, ge=1)
    repeats: int = Field(3, ge=1, description="timed repetitions, each right after its own peak measurement; medians reported")
    min_seconds: float = Field(0.5, ge=0.0, description="a repetition runs whole steps until this much time has passed")
    peak_size: int = Field(1024, ge=64, le=8192, description="side of the square matrices of the peak measurement")
    bfloat16: Literal["auto", "always", "never"] = Field("auto", description="auto: only where the CPU has native bf16")
    compile: bool = Field(False, description="also time torch.compile'd training of the reference (compiling takes ~1 min)")
    isolate: bool = Field(True, description="one subprocess per model: a clean peak RSS each")
    generation: BenchGenerationParams = BenchGenerationParams()
    tokenizer_mb: float = Field(2.0, gt=0.0, le=1024.0, description="megabytes of train text encoded per repetition")


class Params(Strict):
    seed: int = Field(1337, ge=0)
    data: DataParams = DataParams()
    tokenizer: TokenizerParams = TokenizerParams()
    train: TrainParams = TrainParams()
    models: dict[str, dict[str, Any]] = Field(min_length=1)
    evaluate: EvaluateParams = EvaluateParams()
    sample: SampleParams = Field(default_factory=SampleParams)  # built on use: its settings import torch
    sweeps: SweepsParams = SweepsParams()  # the studies: one DVC stage per point (picollm/sweeps.py)
    bench: BenchParams = Field(default_factory=BenchParams)  # stage `bench` (picollm/bench.py)

    @model_validator(mode="after")
    def _bench_is_runnable(self) -> "Params":
        from picollm.bench import check_bench

        check_bench(self)  # raises PicoError naming bench.<key>
        return self

    @model_validator(mode="after")
    def _sweeps_are_runnable(self) -> "Params":
        from picollm.sweeps import check_sweeps

        check_sweeps(self)  # raises PicoError naming sweeps.<sweep>.<key>
        return self

    @model_validator(mode="after")
    def _models_are_buildable(self) -> "Params":
        for name in self.models:
            if not MODEL_NAME.fullmatch(name):
                raise PicoError(
                    f"models: the model name {name!r} is not allowed; use letters, digits, '_', '-' and '.', "
                    "starting with a letter or digit (it names files and DVC stages)"
                )
            self.model_spec(name)  # raises PicoError naming models.<name>.<field>
        return self

    def model_train(self, name: str) -> TrainParams:
        entry = self._entry(name)
        try:
            return self.train.merged(entry.get("train"))
        except ValidationError as err:
            raise PicoError(_describe(err, prefix=f"models.{name}.train")) from None

    def model_spec(self, name: str) -> dict[str, Any]:
        """The architecture part of models.<name>, checked by the model registry."""
        from picollm.models.registry import model_config

        spec = {k: v for k, v in self._entry(name).items() if k != "train"}
        train = self.model_train(name)
        model_config(
            spec,
            vocab_size=self.tokenizer.effective_vocab_size,
            block_size=train.block_size,
            pad_id=0,
            key=f"models.{name}",
        )
        return spec

    def _entry(self, name: str) -> dict[str, Any]:
        if name not in self.models:
            raise PicoError(f"{PARAMS_FILE}: no model named {name!r} under models; defined: {sorted(self.models)}")
        entry = self.models[name]
        if not isinstance(entry, dict):
            raise PicoError(f"{PARAMS_FILE}: models.{name} must be a mapping with a 'family' key, got {entry!r}")
        return entry


def _describe(err: ValidationError, prefix: str = "") -> str:
    first = err.errors()[0]
    loc = ".".join(str(part) for part in (prefix, *first["loc"]) if part != "")
    value = first.get("input")
    if first["type"] == "extra_forbidden":
        return f"{PARAMS_FILE}: unknown key {loc!r}; check its spelling against the documented params"
    if first["type"] == "missing":
        return f"{PARAMS_FILE}: required key {loc!r} is missing"
    return f"{PARAMS_FILE}: {loc} = {value!r} is not allowed: {first['msg']}"


def parse_params(raw: object, source: str = PARAMS_FILE) -> Params:
    if not isinstance(raw, dict):
        raise PicoError(f"{source}: the top level must be a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise PicoError(_describe(err).replace(PARAMS_FILE, source, 1)) from None
    except PicoError as err:  # from the model registry, via the validator
        message = str(err)
        raise PicoError(message if message.startswith(source) else f"{source}: {message}") from None


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int) -> Params:
    text = Path(path).read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PicoError(f"{path} is not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    return parse_params(raw, source=path)


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    if not path.is_file():
        raise PicoError(f"{path} does not exist; run from the project root, which holds params.yaml")
    return _load_cached(str(path.resolve()), path.stat().st_mtime_ns)
