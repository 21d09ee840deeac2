"""The studies' plan: their points, how each point's training and model derive from params, and their files.

A study's points are the combinations of its axes (its params class's `AXES`, picollm/config.py):
dvc.yaml's `matrix:` expands the same lists in the same order and passes the values on the command
line, so a point's stage is named by its values and declares as params only what every point
shares. Each study also names one point (`noise`) that its noise stage reruns with every seed of
`sweeps.noise_seeds`. This module needs only the params schema and the model registry, so
`picollm.params` checks every point before any stage runs, and a change to how a study is
summarised, worded or drawn (picollm/studies/<study>.py) reruns none of the other stages.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from picollm import paths
from picollm.config import PARAMS_FILE, describe
from picollm.config_sweeps import SweepsParams
from picollm.errors import PicoError
from picollm.models.registry import model_config

STUDIES = SweepsParams.studies()
GRID_AXES = ("embed", "layers", "heads")   # a point with these axes resizes its model (hparam_grid)
GRID_FAMILIES = ("lstm", "transformer")
DATA_DIR = Path("data/sweeps")             # a study's own token caches (the overfitting study's)
NOISE = "noise"                            # the key of a study's noise runs: python -m stages.sweep STUDY noise


# ------------------------------------------------------------------------------ file layout
def point_metrics(study: str, key: str) -> Path:
    return paths.METRICS_DIR / "sweeps" / "points" / study / f"{key}.json"


def point_timings(study: str, key: str) -> Path:
    return paths.TIMINGS_DIR / "sweeps" / "points" / study / f"{key}.json"


def noise_metrics(study: str) -> Path:
    return paths.METRICS_DIR / "sweeps" / "noise" / f"{study}.json"


def noise_timings(study: str) -> Path:
    return paths.TIMINGS_DIR / "sweeps" / "noise" / f"{study}.json"


def sweep_metrics(study: str) -> Path:
    return paths.METRICS_DIR / "sweeps" / f"{study}.json"


def sweep_timings(study: str) -> Path:
    return paths.TIMINGS_DIR / "sweeps" / f"{study}.json"


def point_checkpoint(study: str, key: str, seed: int | None = None) -> Path:
    if seed is not None:
        return paths.MODELS_DIR / "sweeps" / NOISE / study / f"seed{seed}.ckpt"
    return paths.MODELS_DIR / "sweeps" / study / f"{key}.ckpt"


def point_resume_dir(study: str, key: str, seed: int | None = None) -> Path:
    if seed is not None:
        return paths.CHECKPOINTS_DIR / "sweeps" / NOISE / study / f"seed{seed}"
    return paths.CHECKPOINTS_DIR / "sweeps" / study / key


def study_data_dir(study: str) -> Path:
    return DATA_DIR / study


# ------------------------------------------------------------------------------ points
def check_study(study: str) -> None:
    if study not in STUDIES:
        raise PicoError(f"no study named {study!r}; the studies are: {', '.join(STUDIES)}")


def axes(study: str) -> tuple[tuple[str, str, type], ...]:
    check_study(study)
    return SweepsParams.model_fields[study].annotation.AXES


def axis_names(study: str) -> list[str]:
    return [name for name, _, _ in axes(study)]


def points(params, study: str) -> list[dict[str, Any]]:
    """Every point of a study, in the order DVC's matrix expands them."""
    study_axes = axes(study)
    section = params.sweeps.study(study)
    lists = [getattr(section, source) for _, source, _ in study_axes]
    return [dict(zip(axis_names(study), combo)) for combo in itertools.product(*lists)]


def noise_point(params, study: str) -> dict[str, Any]:
    """The point the study's noise stage reruns: `sweeps.<study>.noise`, which must be one of its points."""
    check_study(study)
    noise = params.sweeps.study(study).noise
    names = axis_names(study)
    if set(noise) != set(names):
        raise PicoError(
            f"{PARAMS_FILE}: sweeps.{study}.noise must give a value for each of {', '.join(names)} "
            f"(the point rerun with sweeps.noise_seeds); got {', '.join(map(str, noise)) or 'none'}"
        )
    point = {name: noise[name] for name in names}
    if point not in points(params, study):
        raise PicoError(f"{PARAMS_FILE}: sweeps.{study}.noise = {point} is not a point of the study; pick one from its lists")
    return point


def point_key(point: dict[str, Any]) -> str:
    """The stage key DVC's matrix gives a point: its values joined by '-'."""
    return "-".join(str(value) for value in point.values())


def parse_point(params, study: str, assignments: list[str]) -> dict[str, Any]:
    """`model=lstm docs=250` (from the stage's command line) -> the point, which params must define."""
    types = {name: kind for name, _, kind in axes(study)}
    point: dict[str, Any] = {}
    for item in assignments:
        name, sep, raw = item.partition("=")
        if not sep or name not in types:
            raise PicoError(f"study {study}: {item!r} is not an assignment of one of its axes ({', '.join(types)}=VALUE)")
        try:
            point[name] = types[name](raw)
        except ValueError:
            kind = {int: "an integer", float: "a number"}.get(types[name], "a string")
            raise PicoError(f"study {study}: {name}={raw!r} is not {kind}") from None
    if set(point) != set(types):
        raise PicoError(f"study {study}: a point needs a value for each of {', '.join(types)}; got {', '.join(point) or 'none'}")
    if point not in points(params, study):
        raise PicoError(
            f"study {study}: the point {point} is not in params.yaml's sweeps.{study}; "
            "run it through `dvc repro`, which builds the points from params"
        )
    return {name: point[name] for name in types}


def point_train(params, study: str, point: dict[str, Any]):
    """train + models.<model>.train, then sweeps.<study>.train, then the point's own values."""
    section = params.sweeps.study(study)
    base = params.model_train(point["model"])
    try:
        train = base.merged(section.train)
    except ValidationError as err:
        raise PicoError(describe(err, prefix=f"sweeps.{study}.train")) from None
    try:
        return train.merged(section.own_train(point))
    except ValidationError as err:
        raise PicoError(describe(err, prefix=f"sweeps.{study} point {point}")) from None


def point_spec(params, study: str, point: dict[str, Any]) -> dict[str, Any]:
    """The model spec: models.<model> with sweeps.<study>.spec, resized by a grid point's embed/layers/heads."""
    spec = {**params.model_spec(point["model"]), **(params.sweeps.study(study).spec or {})}
    if not set(GRID_AXES) <= set(point):
        return spec
    family = spec.get("family")
    if family not in GRID_FAMILIES:
        raise PicoError(
            f"sweeps.{study}.models: {point['model']!r} is a {family} model; the grid resizes only "
            f"{' and '.join(GRID_FAMILIES)} models (embed, layers, heads)"
        )
    base = model_config(spec, vocab_size=params.tokenizer.effective_vocab_size, block_size=2, pad_id=0, key=f"models.{point['model']}")
    embed, layers, heads = point["embed"], point["layers"], point["heads"]
    if family == "transformer":
        group = max(1, base.n_head // base.n_kv_head)  # query heads per key/value head (GQA) stays
        spec.update(
            d_model=embed, n_layer=layers, n_head=heads,
            n_kv_head=heads // group if heads % group == 0 and heads >= group else heads,
            d_ff=max(1, round(base.d_ff * embed / base.d_model)),
        )
    else:
        spec.update(d_embed=embed, n_layer=layers, hidden=max(1, round(base.hidden * embed / base.d_embed)))
    return spec


def check_studies(params) -> None:
    """Every point of every study, and its noise point, resolves to valid training params and a buildable model."""
    if params.seed in params.sweeps.noise_seeds:
        raise PicoError(
            f"{PARAMS_FILE}: sweeps.noise_seeds lists {params.seed}, the seed every point already trains with; "
            "list other seeds"
        )
    for study in STUDIES:
        section = params.sweeps.study(study)
        for name in section.models:
            if name not in params.models:
                raise PicoError(
                    f"{PARAMS_FILE}: sweeps.{study}.models lists {name!r}, which is not a model under models; "
                    f"defined: {sorted(params.models)}"
                )
        for point in points(params, study):
            train = point_train(params, study, point)
            spec = point_spec(params, study, point)
            model_config(
                spec, vocab_size=params.tokenizer.effective_vocab_size, block_size=train.block_size, pad_id=0,
                key=f"sweeps.{study} point {point}",
            )
        noise_point(params, study)
