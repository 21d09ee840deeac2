"""Stage `prepare`: source -> dedup -> train/val/test JSONL, and metrics/data.json."""

from picollm import paths
from picollm.config import load_params
from picollm.data.prepare import build_corpus, corpus_stats, write_splits
from picollm.errors import exit_on_pico_error
from picollm.io import write_json


@exit_on_pico_error
def main() -> None:
    params = load_params()
    splits = build_corpus(params.data, params.seed)
    write_splits(splits, paths.PREPARED_DIR)
    write_json(paths.DATA_METRICS, {"source": params.data.source, **corpus_stats(splits)})


if __name__ == "__main__":
    main()
