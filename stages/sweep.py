"""Stage `sweep_<study>@<point>` and its kin: train and score the points of a study (see picollm/studies/).

    python -m stages.sweep corpus_size kgram_onehot-200 model=kgram_onehot docs=200   # one point (dvc.yaml's matrix)
    python -m stages.sweep corpus_size noise                                          # the noise point, every noise seed
    python -m stages.sweep overfitting-data                                           # the overfitting study's caches
"""

import sys

from picollm.errors import PicoError, exit_on_pico_error
from picollm.io import write_json
from picollm.params import load_params
from picollm.studies import plan as study_plan
from picollm.studies import run as study_run
from picollm.studies.memorisation import prepare_overfitting

USAGE = "usage: python -m stages.sweep STUDY POINT AXIS=VALUE ... | STUDY noise | overfitting-data"


@exit_on_pico_error
def main(*argv: str) -> None:
    params = load_params()
    if list(argv) == ["overfitting-data"]:
        prepare_overfitting(params)
        return
    if len(argv) < 2:
        raise PicoError(USAGE)
    study, key, *assignments = argv
    study_plan.check_study(study)
    if key == study_plan.NOISE and not assignments:
        metrics, timings = study_run.run_noise(params, study)
        write_json(study_plan.noise_metrics(study), metrics)
        write_json(study_plan.noise_timings(study), timings)
        return
    point = study_plan.parse_point(params, study, assignments)
    metrics, timings = study_run.run_point(params, study, key, point)
    write_json(study_plan.point_metrics(study, key), metrics)
    write_json(study_plan.point_timings(study, key), timings)


if __name__ == "__main__":
    main(*sys.argv[1:])
