"""Stage `bench`: speed against the machine's measured matmul peak -> metrics/bench.json,
reports/bench.md and plots/bench.png (picollm/bench/)."""

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("PICOLLM_KERNELS", "native")  # the bench times this CPU's own kernels (picollm/kernels.py)

from picollm import paths
from picollm.bench.report import markdown_report, plot_bench
from picollm.bench.run import run_bench
from picollm.errors import exit_on_pico_error
from picollm.io import write_json, write_text
from picollm.params import load_params


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
    with tempfile.TemporaryDirectory(prefix="picollm-bench-") as workdir:
        out = run_bench(params, Path(workdir), log=lambda line: print(line, file=sys.stderr, flush=True))
    write_json(paths.BENCH_METRICS, _round(out))
    write_text(paths.BENCH_REPORT, "# Speed\n\n" + markdown_report(out))
    plot_bench(out, paths.BENCH_PLOT)


if __name__ == "__main__":
    main()
