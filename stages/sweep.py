"""Stage `sweep_<sweep>@<point>`: train and score one point of a study (see picollm/sweeps.py).

    python -m stages.sweep corpus_size lstm-250 model=lstm docs=250   # one point (dvc.yaml's matrix)
    python -m stages.sweep overfitting-data                           # the overfitting study's caches
"""

import sys

from picollm import sweeps
from picollm.config import load_params
from picollm.errors import PicoError, exit_on_pico_error
from picollm.io import write_json


@exit_on_pico_error
def main(*argv: str) -> None:
    params = load_params()
    if list(argv) == ["overfitting-data"]:
        sweeps.prepare_overfitting(params)
        return
    if len(argv) < 2:
        raise PicoError("usage: python -m stages.sweep SWEEP POINT AXIS=VALUE ... | overfitting-data")
    sweep, key, *assignments = argv
    point = sweeps.parse_point(params, sweep, assignments)
    metrics, timings = sweeps.run_point(params, sweep, key, point)
    write_json(sweeps.point_metrics(sweep, key), metrics)
    write_json(sweeps.point_timings(sweep, key), timings)


if __name__ == "__main__":
    main(*sys.argv[1:])
