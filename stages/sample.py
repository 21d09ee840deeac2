"""Stage `sample`: the sampling study, every model at every decoding setting of `sample.settings`.

Writes metrics/sampling.json (one row per model and setting), plots/sampling_quality_diversity.png
and reports/sampling.md (the samples with their metrics); see picollm/sampling_study.py.
"""

import time

from picollm import paths, tokenizer
from picollm.config import load_params
from picollm.errors import PicoError, exit_on_pico_error
from picollm.evaluate import load_model
from picollm.io import read_json, write_json, write_text
from picollm.sampling_study import continuation_nll, draw_samples, plot_quality_diversity, prompt_ids, report_markdown, study_row


def best_model(models: list[str]) -> str:
    """The scorer: the first row of metrics/models.json (sorted by val bpb), if it is still defined."""
    ranking = read_json(paths.MODELS_RANKING).get("models") or []
    ranked = [row["model"] for row in ranking if row.get("model") in models]
    if not ranked:
        raise PicoError(f"{paths.MODELS_RANKING} ranks none of the models in params.yaml; run `dvc repro compare` first")
    return ranked[0]


@exit_on_pico_error
def main() -> None:
    began = time.perf_counter()
    params = load_params()
    study_params = params.sample
    use_recognizer = params.data.source == "stories"
    tok = tokenizer.load(paths.TOKENS_DIR)
    scorer_name = best_model(list(params.models))
    scorer = load_model(paths.model_checkpoint(scorer_name), tok)
    context = prompt_ids(tok, study_params.prompt)

    rows, samples, seconds = [], {}, {}
    for name in params.models:
        model_began = time.perf_counter()
        model = scorer if name == scorer_name else load_model(paths.model_checkpoint(name), tok)
        for setting in study_params.settings:
            sampling = setting.sampling
            drawn = draw_samples(
                model, tok, study_params.prompt, sampling, study_params.num_samples, study_params.max_new_tokens, study_params.seed
            )
            nll = continuation_nll(scorer, context, drawn.token_ids)
            rows.append(study_row(name, sampling, drawn, nll, use_recognizer))
            samples[(name, sampling.label)] = drawn
        seconds[name] = round(time.perf_counter() - model_began, 2)
        print(f"sample: {name} done in {seconds[name]:.1f} s", flush=True)

    study = {
        "prompt": study_params.prompt,
        "num_samples": study_params.num_samples,
        "max_new_tokens": study_params.max_new_tokens,
        "scorer": scorer_name,
        "source": params.data.source,
        "recognizer": use_recognizer,
        "rows": rows,
    }
    write_json(paths.SAMPLING_METRICS, study)
    plot_quality_diversity(rows, paths.SAMPLING_PLOT, scorer_name)
    write_text(paths.SAMPLING_REPORT, report_markdown(study, samples))
    write_json(paths.SAMPLING_TIMINGS, {"seconds": round(time.perf_counter() - began, 2), "per_model_seconds": seconds})


if __name__ == "__main__":
    main()
