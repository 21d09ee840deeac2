"""Stage `throughput`: plots/throughput.png, every model's training tokens per second (metrics/timings/train).

Apart from the `plots` stage because timings change on every run: retraining a model to the same
bytes then redraws this figure only."""

from picollm import paths
from picollm.errors import exit_on_pico_error
from picollm.params import load_params
from picollm.plots import plot_throughput, throughput_rows


@exit_on_pico_error
def main() -> None:
    plot_throughput(throughput_rows(list(load_params().models)), paths.THROUGHPUT_PLOT)


if __name__ == "__main__":
    main()
