"""Stage `bench`: speed against the machine's measured matmul peak -> metrics/bench.json,
reports/bench.md, plots/bench.png and the README's performance table (picollm/bench.py)."""

import sys
from pathlib import Path

from picollm import paths
from picollm.bench import markdown_report, plot_bench, run_bench
from picollm.compare import update_readme
from picollm.config import load_params
from picollm.errors import exit_on_pico_error
from picollm.io import write_json, write_text


def _round(value):
    """Floats to 4 significant digits: the JSON stays readable (the numbers are noisy anyway)."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


@exit_on_pico_error
def main() -> None:
    params = load_params()
    out = run_bench(params, paths.TOKENS_DIR, paths.PREPARED_DIR, log=lambda line: print(line, file=sys.stderr, flush=True))
    write_json(paths.BENCH_METRICS, _round(out))
    table = markdown_report(out)
    write_text(paths.BENCH_REPORT, "# Speed\n\n" + table)
    plot_bench(out, paths.BENCH_PLOT)
    if Path("README.md").is_file():
        update_readme(Path("README.md"), table, marker="bench")


if __name__ == "__main__":
    main()
