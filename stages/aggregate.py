"""Stage `aggregate@<sweep>`: one sweep's points -> metrics/sweeps/<sweep>.json (tidy rows, findings'
numbers; deterministic) and metrics/timings/sweeps/<sweep>.json (seconds and tokens/s per point)."""

import sys

from picollm.studies import aggregate as study_aggregate
from picollm.studies import plan as study_plan
from picollm.params import load_params
from picollm.errors import exit_on_pico_error
from picollm.io import write_json


@exit_on_pico_error
def main(sweep: str) -> None:
    table, timings = study_aggregate.aggregate(load_params(), sweep)
    write_json(study_plan.sweep_metrics(sweep), table)
    write_json(study_plan.sweep_timings(sweep), timings)


if __name__ == "__main__":
    main(*sys.argv[1:2])
