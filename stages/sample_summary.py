"""Stage `sample_summary`: every model's samples scored by the best model -> metrics/sampling.json,
reports/sampling.md and plots/sampling_quality_diversity.png (see picollm/sampling_study.py).

The scorer is the first model of metrics/models.json (sorted by val bpb); only this cheap stage
reruns when the ranking changes, never the sampling itself.
"""

from picollm import paths, tokenizer
from picollm.errors import PicoError, exit_on_pico_error
from picollm.io import read_json, write_json, write_text
from picollm.models.loading import load_model
from picollm.params import load_params
from picollm.sampling_study import plot_quality_diversity, report_markdown, score_parts


def best_model(models: list[str]) -> str:
    """The scorer: the first row of metrics/models.json (sorted by val bpb) that is still defined."""
    ranking = read_json(paths.MODELS_RANKING).get("models") or []
    ranked = [row["model"] for row in ranking if row.get("model") in models]
    if not ranked:
        raise PicoError(f"{paths.MODELS_RANKING} ranks none of the models in params.yaml; run `dvc repro compare` first")
    return ranked[0]


@exit_on_pico_error
def main() -> None:
    params = load_params()
    study_params = params.sample
    scorer = best_model(list(params.models))
    tok = tokenizer.load(paths.TOKENS_DIR)
    parts = [read_json(paths.samples_part(name)) for name in params.models]
    rows, samples = score_parts(parts, load_model(paths.model_checkpoint(scorer), tok), tok, study_params.prompt)
    study = {
        "prompt": study_params.prompt,
        "num_samples": study_params.num_samples,
        "max_new_tokens": study_params.max_new_tokens,
        "scorer": scorer,
        "source": params.data.source,
        "recognizer": params.data.source == "stories",
        "rows": rows,
    }
    write_json(paths.SAMPLING_METRICS, study)
    plot_quality_diversity(rows, paths.SAMPLING_PLOT, scorer)
    write_text(paths.SAMPLING_REPORT, report_markdown(study, samples))


if __name__ == "__main__":
    main()
