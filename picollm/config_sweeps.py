"""Params section `sweeps`: the studies, one class each (picollm/config.py makes `SweepsParams`
its `sweeps` section).

Four studies, each a section of params.yaml's `sweeps:` and a class below:

- `corpus_size`: the first N train documents, for each N, at one fixed token budget;
- `training_budget`: base_steps x each multiplier, on the whole train split;
- `overfitting`: long training on a few train documents, a share held out; memorisation samples;
- `hparam_grid`: the Cartesian grid of embed, block_size, layers, heads, lr and batch_size.

A study's class declares its params and how its points are made and trained: `AXES` (each list
becomes the axis of a DVC `matrix:` stage, one cached stage per point named by its values, so a
point's values must be unique), `own_train` (the training params a point's values set),
`corpus_docs`, `OWN_DATA` and `MEMORISATION` (read by studies/run.py). The rest of a study lives in
picollm/studies/ (see its __init__), so editing how a study is worded or drawn reruns no point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, Field, field_validator, model_validator

from picollm.config_base import Strict
from picollm.errors import PicoError

Axis = tuple[str, str, type]  # (the point's key, the params list it takes its values from, type)
MODEL_AXIS: Axis = ("model", "models", str)


def _unique(values: list) -> list:
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"the value {repeated[0]} is listed twice; each point of a sweep must differ")
    return values


def _each(check: Callable[[Any], bool], rule: str) -> AfterValidator:
    """A list's validator: every value `rule` (checked by `check`), and none listed twice."""

    def validate(values: list) -> list:
        if not all(check(value) for value in values):
            raise ValueError(f"every value must be {rule}")
        return _unique(values)

    return AfterValidator(validate)


Counts = Annotated[list[int], Field(min_length=1), _each(lambda v: v >= 1, ">= 1")]  # documents, multipliers
Sizes = Annotated[list[int], Field(min_length=1), _each(lambda v: v > 0, "> 0")]  # an hparam grid axis
Rates = Annotated[list[float], Field(min_length=1), _each(lambda v: v > 0, "> 0")]


class SweepParams(Strict):
    """What every study has: the models it trains (entries of `models:`), architecture and training
    overrides for all its points, and the one point it reruns with `sweeps.noise_seeds`."""

    AXES: ClassVar[tuple[Axis, ...]] = (MODEL_AXIS,)

    models: list[str] = Field(min_length=1)
    # null, not {}, clears it in a profile: profiles merge mappings key by key (picollm/profiles.py).
    spec: dict[str, Any] | None = Field(default_factory=dict, description="architecture overrides of models.<m> for every point")
    train: dict[str, Any] = Field(default_factory=dict, description="overrides of train + models.<m>.train for every point")
    noise: dict[str, Any] = Field(description="the point rerun with each of sweeps.noise_seeds: a value for every axis")

    @field_validator("models")
    @classmethod
    def _models_unique(cls, models: list[str]) -> list[str]:
        return _unique(models)

    @field_validator("spec")
    @classmethod
    def _spec_keeps_the_model(cls, spec: dict[str, Any] | None) -> dict[str, Any] | None:
        if {"family", "train"} & set(spec or {}):
            raise ValueError("spec resizes the models it is applied to; it cannot change their family or hold train")
        return spec

    OWN_DATA: ClassVar[bool] = False      # trains and is scored on its own caches (picollm/studies/memorisation.py)
    MEMORISATION: ClassVar[bool] = False  # its points write greedy samples from train and test documents

    def own_train(self, point: dict[str, Any]) -> dict[str, Any]:
        """The training params that the point's own values set (after `train`)."""
        return {}

    def corpus_docs(self, point: dict[str, Any]) -> int | None:
        """Train on the first N documents of the train split only (None: the whole split)."""
        return None


class CorpusSizeSweep(SweepParams):
    """Train on the first N documents of the train split, for each N, at a fixed token budget."""

    AXES: ClassVar[tuple[Axis, ...]] = (MODEL_AXIS, ("docs", "docs", int))
    docs: Counts

    def corpus_docs(self, point: dict[str, Any]) -> int | None:
        return point["docs"]


class TrainingBudgetSweep(SweepParams):
    """The same model and corpus trained for base_steps x each multiplier."""

    AXES: ClassVar[tuple[Axis, ...]] = (MODEL_AXIS, ("multiplier", "multipliers", int))
    base_steps: int = Field(ge=1)
    multipliers: Counts
    target_loss: float | None = Field(None, gt=0.0, description="the fitted law extrapolates the tokens this val loss takes")

    def own_train(self, point: dict[str, Any]) -> dict[str, Any]:
        return {"steps": self.base_steps * point["multiplier"]}


class OverfittingSweep(SweepParams):
    """Long training on a few train documents, a share of them held out: memorisation, divergence."""

    OWN_DATA: ClassVar[bool] = True
    MEMORISATION: ClassVar[bool] = True

    documents: int = Field(20, ge=5, le=10_000, description="the first N documents of the train split")
    train_fraction: float = Field(0.6, gt=0.0, lt=1.0, description="share of them trained on; the rest is the test set")
    prompt_words: int = Field(8, ge=1, description="samples continue the first words of a document")
    samples: int = Field(3, ge=1, le=100, description="greedy samples from train and from test documents, each")
    max_new_tokens: int = Field(40, ge=1)

    @model_validator(mode="after")
    def _both_parts_hold_a_document(self) -> OverfittingSweep:
        n_train = round(self.documents * self.train_fraction)
        if not 1 <= n_train < self.documents:
            raise PicoError(
                f"sweeps.overfitting keeps {n_train} of {self.documents} documents for training; "
                "choose documents and train_fraction so both the train and the test part hold at least one"
            )
        return self


class HparamGridSweep(SweepParams):
    """The Cartesian grid of these lists, for every model. `embed` is the width (transformer d_model,
    LSTM d_embed; d_ff and the LSTM hidden size keep their ratio to it); `heads` is the transformer's
    attention heads (the LSTM has none: lstm points differing only in heads train the same model)."""

    AXES: ClassVar[tuple[Axis, ...]] = (
        MODEL_AXIS, ("embed", "embed", int), ("block_size", "block_size", int), ("layers", "layers", int),
        ("heads", "heads", int), ("lr", "lr", float), ("batch_size", "batch_size", int),
    )
    embed: Sizes
    block_size: Sizes
    layers: Sizes
    heads: Sizes
    lr: Rates
    batch_size: Sizes

    def own_train(self, point: dict[str, Any]) -> dict[str, Any]:
        return {"block_size": point["block_size"], "lr": point["lr"], "batch_size": point["batch_size"]}


def _default_sweeps() -> dict[str, Any]:
    # Used only where params.yaml has no `sweeps:` section: one tiny point per study on the two
    # models every profile defines; params.yaml holds the measured default studies.
    tiny = {"steps": 20, "threads": 1}
    return {
        "corpus_size": {"models": ["lstm"], "docs": [50], "noise": {"model": "lstm", "docs": 50}, "train": tiny},
        "training_budget": {"models": ["lstm"], "base_steps": 20, "multipliers": [1],
                            "noise": {"model": "lstm", "multiplier": 1}, "train": tiny},
        "overfitting": {"models": ["gptoss"], "noise": {"model": "gptoss"}, "train": tiny},
        "hparam_grid": {"models": ["gptoss"], "embed": [64], "block_size": [64], "layers": [1], "heads": [4], "lr": [0.003],
                        "batch_size": [8], "train": tiny,
                        "noise": {"model": "gptoss", "embed": 64, "block_size": 64, "layers": 1, "heads": 4, "lr": 0.003, "batch_size": 8}},
    }


class SweepsParams(Strict):
    eval_docs: int = Field(30, ge=1, description="points are scored on the first N documents of each split")
    noise_seeds: Annotated[list[int], _each(lambda v: v >= 0, ">= 0")] = Field(
        default_factory=lambda: [1], min_length=1, description="each study reruns its noise point with each")
    corpus_size: CorpusSizeSweep = Field(default_factory=lambda: CorpusSizeSweep(**_default_sweeps()["corpus_size"]))
    training_budget: TrainingBudgetSweep = Field(default_factory=lambda: TrainingBudgetSweep(**_default_sweeps()["training_budget"]))
    overfitting: OverfittingSweep = Field(default_factory=lambda: OverfittingSweep(**_default_sweeps()["overfitting"]))
    hparam_grid: HparamGridSweep = Field(default_factory=lambda: HparamGridSweep(**_default_sweeps()["hparam_grid"]))

    @classmethod
    def studies(cls) -> tuple[str, ...]:
        """The study names: the fields that hold a study's section, in declaration order."""
        return tuple(name for name, field in cls.model_fields.items()
                     if isinstance(field.annotation, type) and issubclass(field.annotation, SweepParams))

    def study(self, name: str) -> SweepParams:
        return getattr(self, name)
