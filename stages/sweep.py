"""Stage `sweep_<sweep>@<point>`: train and score one point of a study (see picollm/studies/).

    python -m stages.sweep corpus_size lstm-250 model=lstm docs=250   # one point (dvc.yaml's matrix)
    python -m stages.sweep overfitting-data                           # the overfitting study's caches
"""

import sys

from picollm.studies import plan as study_plan
from picollm.studies import run as study_run
from picollm.params import load_params
from picollm.errors import PicoError, exit_on_pico_error
from picollm.io import write_json


@exit_on_pico_error
def main(*argv: str) -> None:
    params = load_params()
    if list(argv) == ["overfitting-data"]:
        study_run.prepare_overfitting(params)
        return
    if len(argv) < 2:
        raise PicoError("usage: python -m stages.sweep SWEEP POINT AXIS=VALUE ... | overfitting-data")
    sweep, key, *assignments = argv
    point = study_plan.parse_point(params, sweep, assignments)
    metrics, timings = study_run.run_point(params, sweep, key, point)
    write_json(study_plan.point_metrics(sweep, key), metrics)
    write_json(study_plan.point_timings(sweep, key), timings)


if __name__ == "__main__":
    main(*sys.argv[1:])
