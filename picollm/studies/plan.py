"""The studies' plan: their points, how each point's training and model derive from params, and their files.

A study's points are the combinations of its axes (`AXES`): dvc.yaml's `matrix:` expands the same
lists in the same order and passes the values on the command line, so a point's stage is named by
its values and declares as params only what every point shares. This module needs only the params
schema and the model registry, so `picollm.params` can check every point before any stage runs.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from picollm import paths
from picollm.config import PARAMS_FILE, describe
from picollm.errors import PicoError
from picollm.models.registry import model_config

STUDIES = ("corpus_size", "training_budget", "overfitting", "hparam_grid")

# The matrix axes of each sweep, in dvc.yaml's order: (axis, params list it comes from, type).
AXES: dict[str, tuple[tuple[str, str, type], ...]] = {
    "corpus_size": (("model", "models", str), ("docs", "docs", int)),
    "training_budget": (("model", "models", str), ("multiplier", "multipliers", int)),
    "overfitting": (("model", "models", str),),
    "hparam_grid": (
        ("model", "models", str), ("embed", "embed", int), ("block_size", "block_size", int), ("layers", "layers", int),
        ("heads", "heads", int), ("lr", "lr", float), ("batch_size", "batch_size", int),
    ),
}
GRID_FAMILIES = ("lstm", "transformer")
OVERFIT_DIR = Path("data/sweeps/overfitting")  # train.bin, val.bin (the held-out test part), texts.json
ROUND = 6


# ------------------------------------------------------------------------------ file layout
def point_metrics(sweep: str, key: str) -> Path:
    return paths.METRICS_DIR / "sweeps" / "points" / sweep / f"{key}.json"


def point_timings(sweep: str, key: str) -> Path:
    return paths.TIMINGS_DIR / "sweeps" / "points" / sweep / f"{key}.json"


def sweep_metrics(sweep: str) -> Path:
    return paths.METRICS_DIR / "sweeps" / f"{sweep}.json"


def sweep_timings(sweep: str) -> Path:
    return paths.TIMINGS_DIR / "sweeps" / f"{sweep}.json"


def point_checkpoint(sweep: str, key: str) -> Path:
    return paths.MODELS_DIR / "sweeps" / sweep / f"{key}.ckpt"


def point_resume_dir(sweep: str, key: str) -> Path:
    return paths.CHECKPOINTS_DIR / "sweeps" / sweep / key


# ------------------------------------------------------------------------------ points
def check_study(sweep: str) -> None:
    if sweep not in STUDIES:
        raise PicoError(f"no sweep named {sweep!r}; the sweeps are: {', '.join(STUDIES)}")


def points(params, sweep: str) -> list[dict[str, Any]]:
    """Every point of a sweep, in the order DVC's matrix expands them."""
    check_study(sweep)
    section = getattr(params.sweeps, sweep)
    axes = AXES[sweep]
    lists = [getattr(section, source) for _, source, _ in axes]
    return [dict(zip((name for name, _, _ in axes), combo)) for combo in itertools.product(*lists)]


def parse_point(params, sweep: str, assignments: list[str]) -> dict[str, Any]:
    """`model=lstm docs=250` (from the stage's command line) -> the point, which params must define."""
    check_study(sweep)
    types = {name: kind for name, _, kind in AXES[sweep]}
    point: dict[str, Any] = {}
    for item in assignments:
        name, sep, raw = item.partition("=")
        if not sep or name not in types:
            raise PicoError(f"sweep {sweep}: {item!r} is not an assignment of one of its axes ({', '.join(types)}=VALUE)")
        try:
            point[name] = types[name](raw)
        except ValueError:
            kind = {int: "an integer", float: "a number"}.get(types[name], "a string")
            raise PicoError(f"sweep {sweep}: {name}={raw!r} is not {kind}") from None
    if set(point) != set(types):
        raise PicoError(f"sweep {sweep}: a point needs a value for each of {', '.join(types)}; got {', '.join(point) or 'none'}")
    if point not in points(params, sweep):
        raise PicoError(
            f"sweep {sweep}: the point {point} is not in params.yaml's sweeps.{sweep}; "
            "run it through `dvc repro`, which builds the points from params"
        )
    return {name: point[name] for name, _, _ in AXES[sweep]}


def point_train(params, sweep: str, point: dict[str, Any]):
    """train + models.<model>.train, then sweeps.<sweep>.train, then the point's own values."""
    section = getattr(params.sweeps, sweep)
    base = params.model_train(point["model"])
    try:
        train = base.merged(section.train)
    except ValidationError as err:
        raise PicoError(describe(err, prefix=f"sweeps.{sweep}.train")) from None
    own: dict[str, Any] = {}
    if sweep == "training_budget":
        own = {"steps": section.base_steps * point["multiplier"]}
    elif sweep == "hparam_grid":
        own = {"block_size": point["block_size"], "lr": point["lr"], "batch_size": point["batch_size"]}
    try:
        return train.merged(own)
    except ValidationError as err:
        raise PicoError(describe(err, prefix=f"sweeps.{sweep} point {point}")) from None


def point_spec(params, sweep: str, point: dict[str, Any]) -> dict[str, Any]:
    """The model spec: models.<model>, resized by the grid's embed/layers/heads for hparam_grid."""
    spec = dict(params.model_spec(point["model"]))
    if sweep != "hparam_grid":
        return spec
    family = spec.get("family")
    if family not in GRID_FAMILIES:
        raise PicoError(
            f"sweeps.hparam_grid.models: {point['model']!r} is a {family} model; the grid resizes only "
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
    """Every point of every sweep resolves to valid training params and a buildable model."""
    for sweep in STUDIES:
        section = getattr(params.sweeps, sweep)
        for name in section.models:
            if name not in params.models:
                raise PicoError(
                    f"{PARAMS_FILE}: sweeps.{sweep}.models lists {name!r}, which is not a model under models; "
                    f"defined: {sorted(params.models)}"
                )
        for point in points(params, sweep):
            train = point_train(params, sweep, point)
            spec = point_spec(params, sweep, point)
            model_config(
                spec, vocab_size=params.tokenizer.effective_vocab_size, block_size=train.block_size, pad_id=0,
                key=f"sweeps.{sweep} point {point}",
            )
    ov = params.sweeps.overfitting
    n_train = round(ov.documents * ov.train_fraction)
    if not 1 <= n_train < ov.documents:
        raise PicoError(
            f"{PARAMS_FILE}: sweeps.overfitting keeps {n_train} of {ov.documents} documents for training; "
            "choose documents and train_fraction so both the train and the test part hold at least one"
        )
