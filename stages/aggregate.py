"""Stage `aggregate@<study>`: one study's points and noise runs -> metrics/sweeps/<study>.json (tidy
rows, noise, fitted laws, the findings' numbers; deterministic) and metrics/timings/sweeps/<study>.json."""

import sys

from picollm.errors import exit_on_pico_error
from picollm.io import write_json
from picollm.params import load_params
from picollm.studies import aggregate as study_aggregate
from picollm.studies import plan as study_plan


@exit_on_pico_error
def main(study: str) -> None:
    table, timings = study_aggregate.aggregate(load_params(), study)
    write_json(study_plan.sweep_metrics(study), table)
    write_json(study_plan.sweep_timings(study), timings)


if __name__ == "__main__":
    main(*sys.argv[1:2])
