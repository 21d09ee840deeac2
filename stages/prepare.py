"""Stage `prepare`: source -> dedup -> train/val/test JSONL, and metrics/data.json (streaming)."""

from picollm import paths
from picollm.data.prepare import prepare_corpus
from picollm.errors import exit_on_pico_error
from picollm.io import write_json
from picollm.params import load_params


@exit_on_pico_error
def main() -> None:
    params = load_params()
    stats = prepare_corpus(params.data, params.seed, paths.PREPARED_DIR)
    write_json(paths.DATA_METRICS, {"source": params.data.source, **stats})


if __name__ == "__main__":
    main()
