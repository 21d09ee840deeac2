"""The studies: sweeps whose every point is its own cached DVC stage, and their params schema.

Four studies, each a section of params.yaml's `sweeps:` and a class below (picollm/config.py makes
`SweepsParams` its `sweeps` section; it lives here, in the package every stage already imports
through the params checks, so the studies' schema stays in one place next to the studies):

- `corpus_size`: the first N train documents, for each N, at one fixed token budget;
- `training_budget`: base_steps x each multiplier, on the whole train split;
- `overfitting`: long training on a few train documents, a share held out; memorisation samples;
- `hparam_grid`: the Cartesian grid of embed, block_size, layers, heads, lr and batch_size.

A study's class declares its params and how its points are made and trained: `AXES` (each list
becomes the axis of a DVC `matrix:` stage, one cached stage per point named by its values, so a
point's values must be unique), `own_train` (the training params a point's values set),
`corpus_docs`, `OWN_DATA` and `MEMORISATION` (read by run.py). The rest of a study is its module,
picollm/studies/<study>.py (summary, findings, figures, report tables; found through registry.py),
so editing how a study is worded or drawn reruns no point. plan.py makes the points and their
files, run.py trains one, aggregate.py gathers them, fit.py fits the scaling laws. Design, budgets
and measured numbers: docs/studies.md.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from picollm.config_base import Strict
from picollm.errors import PicoError

Axis = tuple[str, str, type]  # (the point's key, the params list it takes its values from, type)
MODEL_AXIS: Axis = ("model", "models", str)


def _unique(values: list) -> list:
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"the value {repeated[0]} is listed twice; each point of a sweep must differ")
    return values


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
    docs: list[int] = Field(min_length=1)

    def corpus_docs(self, point: dict[str, Any]) -> int | None:
        return point["docs"]

    @field_validator("docs")
    @classmethod
    def _docs(cls, docs: list[int]) -> list[int]:
        if min(docs) < 1:
            raise ValueError("every corpus size must be >= 1 document")
        return _unique(docs)


class TrainingBudgetSweep(SweepParams):
    """The same model and corpus trained for base_steps x each multiplier."""

    AXES: ClassVar[tuple[Axis, ...]] = (MODEL_AXIS, ("multiplier", "multipliers", int))
    base_steps: int = Field(ge=1)
    multipliers: list[int] = Field(min_length=1)
    target_loss: float | None = Field(None, gt=0.0, description="the fitted law extrapolates the tokens this val loss takes")

    @field_validator("multipliers")
    @classmethod
    def _multipliers(cls, multipliers: list[int]) -> list[int]:
        if min(multipliers) < 1:
            raise ValueError("every multiplier must be >= 1")
        return _unique(multipliers)

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
    embed: list[int] = Field(min_length=1)
    block_size: list[int] = Field(min_length=1)
    layers: list[int] = Field(min_length=1)
    heads: list[int] = Field(min_length=1)
    lr: list[float] = Field(min_length=1)
    batch_size: list[int] = Field(min_length=1)

    @field_validator("embed", "block_size", "layers", "heads", "lr", "batch_size")
    @classmethod
    def _axis(cls, values: list) -> list:
        if min(values) <= 0:
            raise ValueError("every value must be > 0")
        return _unique(values)

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
    noise_seeds: list[int] = Field(default_factory=lambda: [1], min_length=1, description="each study reruns its noise point with each")
    corpus_size: CorpusSizeSweep = Field(default_factory=lambda: CorpusSizeSweep(**_default_sweeps()["corpus_size"]))
    training_budget: TrainingBudgetSweep = Field(default_factory=lambda: TrainingBudgetSweep(**_default_sweeps()["training_budget"]))
    overfitting: OverfittingSweep = Field(default_factory=lambda: OverfittingSweep(**_default_sweeps()["overfitting"]))
    hparam_grid: HparamGridSweep = Field(default_factory=lambda: HparamGridSweep(**_default_sweeps()["hparam_grid"]))

    @field_validator("noise_seeds")
    @classmethod
    def _seeds(cls, seeds: list[int]) -> list[int]:
        if min(seeds) < 0:
            raise ValueError("every seed must be >= 0")
        return _unique(seeds)

    @classmethod
    def studies(cls) -> tuple[str, ...]:
        """The study names: the fields that hold a study's section, in declaration order."""
        return tuple(name for name, field in cls.model_fields.items()
                     if isinstance(field.annotation, type) and issubclass(field.annotation, SweepParams))

    def study(self, name: str) -> SweepParams:
        return getattr(self, name)
