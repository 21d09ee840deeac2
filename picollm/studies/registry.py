"""The studies, by name: each module under picollm/studies/ declares one `Study` (its summary,
findings, figures and tables); its params and points are its class in picollm/config.py.

Adding a study: its params class in picollm/config.py (a field of `SweepsParams`), its module here,
its section in params.yaml, and its stages in dvc.yaml (points, noise, and the aggregate's list).
"""

from __future__ import annotations

from picollm.errors import PicoError
from picollm.studies import corpus_size, hparam_grid, overfitting, training_budget
from picollm.studies.base import Study
from picollm.studies.plan import STUDIES

REGISTRY: dict[str, Study] = {module.STUDY.name: module.STUDY for module in (corpus_size, training_budget, overfitting, hparam_grid)}


def study(name: str) -> Study:
    if name not in REGISTRY:
        raise PicoError(f"no study named {name!r}; the studies are: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def ordered() -> list[Study]:
    """Every study, in params.yaml's order."""
    return [REGISTRY[name] for name in STUDIES]
