"""The params schema: every section of `params.yaml` as a strict pydantic model.

`picollm.params.load_params` reads the file, validates it against this schema and then runs the
plan checks of the studies and the bench, which need the schema and the model registry.

Every section is a strict model (unknown keys are errors). A failure becomes one
`PicoError` sentence naming the file, the dotted key, the offending value and what is allowed.
Model architectures are validated by the model registry itself, so a preset override that
breaks its constraints (d_model not divisible by heads, > 10 blocks, ...) is caught here too.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, model_validator

from picollm.config_base import END_OF_TEXT, GPT2_VOCAB_SIZE, MIN_BPE_VOCAB, MODEL_NAME, PARAMS_FILE, Strict
from picollm.config_bench import BenchGenerationParams, BenchParams
from picollm.config_data import DataParams, MixParams, StoriesParams, TextFormat, TextParams, TinyStoriesParams, TokenizerParams
from picollm.config_runs import (
    EvaluateParams,
    InterpretParams,
    SampleParams,
    SampleSetting,
    SpeedrunParams,
    TrainParams,
)
from picollm.config_sweeps import SweepsParams
from picollm.errors import PicoError

__all__ = [  # the schema's sections live beside it, by topic; this module is the one to import
    "END_OF_TEXT", "GPT2_VOCAB_SIZE", "MIN_BPE_VOCAB", "MODEL_NAME", "PARAMS_FILE", "Strict", "BenchGenerationParams",
    "BenchParams", "DataParams", "MixParams", "StoriesParams", "TextFormat", "TextParams", "TinyStoriesParams",
    "TokenizerParams", "EvaluateParams", "InterpretParams", "SampleParams", "SampleSetting", "SpeedrunParams", "TrainParams",
    "SweepsParams", "Params", "describe", "validate_schema",
]


class Params(Strict):
    seed: int = Field(1337, ge=0)
    data: DataParams = DataParams()
    tokenizer: TokenizerParams = TokenizerParams()
    train: TrainParams = TrainParams()
    models: dict[str, dict[str, Any]] = Field(min_length=1)
    evaluate: EvaluateParams = EvaluateParams()
    interpret: InterpretParams = InterpretParams()
    speedrun: SpeedrunParams = SpeedrunParams()
    sample: SampleParams = Field(default_factory=SampleParams)  # built on use: its settings import torch
    sweeps: SweepsParams = Field(default_factory=SweepsParams)  # the studies (picollm/studies/): one DVC stage per point
    bench: BenchParams = Field(default_factory=BenchParams)  # stage `bench` (picollm/bench.py)

    @model_validator(mode="after")
    def _models_are_buildable(self) -> Params:
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
            raise PicoError(describe(err, prefix=f"models.{name}.train")) from None

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


def describe(err: ValidationError, prefix: str = "") -> str:
    """One sentence for a pydantic error: the file, the dotted key, the value and what is allowed."""
    first = err.errors()[0]
    loc = ".".join(str(part) for part in (prefix, *first["loc"]) if part != "")
    value = first.get("input")
    if first["type"] == "extra_forbidden":
        return f"{PARAMS_FILE}: unknown key {loc!r}; check its spelling against the documented params"
    if first["type"] == "missing":
        return f"{PARAMS_FILE}: required key {loc!r} is missing"
    return f"{PARAMS_FILE}: {loc} = {value!r} is not allowed: {first['msg']}"


def validate_schema(raw: object, source: str = PARAMS_FILE) -> Params:
    """The schema and the model registry's checks; `picollm.params.parse_params` adds the plan checks."""
    if not isinstance(raw, dict):
        raise PicoError(f"{source}: the top level must be a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise PicoError(describe(err).replace(PARAMS_FILE, source, 1)) from None
    except PicoError as err:  # from the model registry, via the validator
        message = str(err)
        raise PicoError(message if message.startswith(source) else f"{source}: {message}") from None
