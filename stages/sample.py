"""Stage `sample@<model>`: one model at every decoding setting of `sample.settings`.

Writes data/samples/<model>.json (its rows of the study, before the scorer's NLL, and the samples)
and its timing. `sample_summary` scores all of them with the best model and writes the study.
"""

import sys
import time

from picollm import paths, tokenizer
from picollm.errors import PicoError, exit_on_pico_error
from picollm.io import write_json
from picollm.models.loading import load_model
from picollm.params import load_params
from picollm.sampling_study import sample_model


@exit_on_pico_error
def main(name: str) -> None:
    began = time.perf_counter()
    params = load_params()
    if name not in params.models:
        raise PicoError(f"sample@{name}: no model named {name!r} under models; defined: {sorted(params.models)}")
    checkpoint = paths.model_checkpoint(name)
    if not checkpoint.is_file():
        raise PicoError(f"{checkpoint} does not exist; train it with `dvc repro train@{name}`")
    study = params.sample
    tok = tokenizer.load(paths.TOKENS_DIR)
    part = sample_model(
        name, load_model(checkpoint, tok), tok, study.prompt, tuple(s.sampling for s in study.settings),
        study.num_samples, study.max_new_tokens, study.seed, use_recognizer=params.data.source == "stories",
    )
    write_json(paths.samples_part(name), part)
    write_json(paths.TIMINGS_DIR / "sample" / f"{name}.json", {"seconds": round(time.perf_counter() - began, 2)})


if __name__ == "__main__":
    main(sys.argv[1])
