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
    model_config = ConfigDict(extra="forbid", frozen=True)


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
        from picollm.sampling import SamplingConfig

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


class Params(Strict):
    seed: int = Field(1337, ge=0)
    data: DataParams = DataParams()
    tokenizer: TokenizerParams = TokenizerParams()
    train: TrainParams = TrainParams()
    models: dict[str, dict[str, Any]] = Field(min_length=1)
    evaluate: EvaluateParams = EvaluateParams()
    sample: SampleParams = SampleParams()

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
    return _load_cached(str(path), path.stat().st_mtime_ns)
