"""Stage `aggregate@<sweep>`: one sweep's points -> metrics/sweeps/<sweep>.json (tidy rows, findings'
numbers; deterministic) and metrics/timings/sweeps/<sweep>.json (seconds and tokens/s per point)."""

import sys

from picollm import sweeps
from picollm.config import load_params
from picollm.errors import exit_on_pico_error
from picollm.io import write_json


@exit_on_pico_error
def main(sweep: str) -> None:
    table, timings = sweeps.aggregate(load_params(), sweep)
    write_json(sweeps.sweep_metrics(sweep), table)
    write_json(sweeps.sweep_timings(sweep), timings)


if __name__ == "__main__":
    main(*sys.argv[1:2])
