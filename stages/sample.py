"""Stage `sample`: the sampling study, every model at every decoding setting of `sample.settings`.

Writes metrics/sampling.json (one row per model and setting), plots/sampling_quality_diversity.png
and reports/sampling.md (the samples with their metrics); see picollm/sampling_study.py. Models
are decoded by `sample.workers` processes in parallel, each on one torch thread; the results do
not depend on the number of workers.
"""

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

from picollm import paths
from picollm.config import load_params
from picollm.errors import PicoError, exit_on_pico_error
from picollm.io import read_json, write_json, write_text
from picollm.sampling_study import ModelJob, plot_quality_diversity, report_markdown, run_model_job


def best_model(models: list[str]) -> str:
    """The scorer: the first row of metrics/models.json (sorted by val bpb) that is still defined."""
    ranking = read_json(paths.MODELS_RANKING).get("models") or []
    ranked = [row["model"] for row in ranking if row.get("model") in models]
    if not ranked:
        raise PicoError(f"{paths.MODELS_RANKING} ranks none of the models in params.yaml; run `dvc repro compare` first")
    return ranked[0]


def run_jobs(jobs: list[ModelJob], workers: int):
    """Each job's result, in job order: in this process, or in `workers` spawned processes."""
    workers = min(workers, len(jobs))
    if workers <= 1:
        yield from map(run_model_job, jobs)
        return
    # spawn, not fork: a forked child inherits torch's thread pools in an undefined state.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(run_model_job, jobs)


@exit_on_pico_error
def main() -> None:
    began = time.perf_counter()
    params = load_params()
    study_params = params.sample
    use_recognizer = params.data.source == "stories"
    scorer = best_model(list(params.models))
    settings = tuple(setting.sampling for setting in study_params.settings)
    for name in params.models:
        if not paths.model_checkpoint(name).is_file():
            raise PicoError(f"{paths.model_checkpoint(name)} does not exist; train it with `dvc repro train@{name}`")
    jobs = [
        ModelJob(
            name=name,
            checkpoint=str(paths.model_checkpoint(name)),
            scorer=str(paths.model_checkpoint(scorer)),
            tokens_dir=str(paths.TOKENS_DIR),
            prompt=study_params.prompt,
            settings=settings,
            num_samples=study_params.num_samples,
            max_new_tokens=study_params.max_new_tokens,
            seed=study_params.seed,
            use_recognizer=use_recognizer,
        )
        for name in params.models
    ]

    rows, samples, seconds = [], {}, {}
    for job, (job_rows, job_samples, job_seconds) in zip(jobs, run_jobs(jobs, study_params.workers)):
        rows += job_rows
        samples.update({(job.name, sampling.label): drawn for sampling, drawn in zip(settings, job_samples)})
        seconds[job.name] = round(job_seconds, 2)
        print(f"sample: {job.name} done in {job_seconds:.1f} s", flush=True)

    study = {
        "prompt": study_params.prompt,
        "num_samples": study_params.num_samples,
        "max_new_tokens": study_params.max_new_tokens,
        "scorer": scorer,
        "source": params.data.source,
        "recognizer": use_recognizer,
        "rows": rows,
    }
    write_json(paths.SAMPLING_METRICS, study)
    plot_quality_diversity(rows, paths.SAMPLING_PLOT, scorer)
    write_text(paths.SAMPLING_REPORT, report_markdown(study, samples))
    write_json(paths.SAMPLING_TIMINGS, {
        "seconds": round(time.perf_counter() - began, 2), "workers": min(study_params.workers, len(jobs)), "per_model_seconds": seconds,
    })


if __name__ == "__main__":
    main()
