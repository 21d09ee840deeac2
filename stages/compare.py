"""Stage `compare`: one row per model -> metrics/models.json, reports/models.md."""

from picollm import paths
from picollm.compare import comparison_rows, loss_class_table, markdown_table
from picollm.errors import exit_on_pico_error
from picollm.io import read_json, write_json, write_text
from picollm.params import load_params


@exit_on_pico_error
def main() -> None:
    params = load_params()
    evals = {name: read_json(paths.eval_metrics(name)) for name in params.models}
    logs = {name: read_json(paths.train_log_dir(name) / "metrics.json") for name in params.models}
    rows = comparison_rows(params.models, evals, logs)
    data = read_json(paths.DATA_METRICS)
    floor = data.get("entropy_floor_bpb")
    unigram = read_json(paths.TOKENIZER_METRICS)["unigram_val_bpb"]
    write_json(paths.METRICS_DIR / "models.json", {"entropy_floor_bpb": floor, "unigram_val_bpb": unigram, "models": rows})
    table = markdown_table(rows, floor, unigram)
    breakdown = loss_class_table(rows, data.get("entropy_floor_nats_per_story"), data.get("entropy_floor_name_nats_per_story"))
    if breakdown:
        table += "\n" + breakdown
    write_text(paths.REPORTS_DIR / "models.md", table)


if __name__ == "__main__":
    main()
