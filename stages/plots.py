"""Stage `plots`: seaborn PNGs under plots/ and the tidy CSVs behind dvc.yaml's `plots:` section."""

from picollm.errors import exit_on_pico_error
from picollm.params import load_params
from picollm.plots import make_plots


@exit_on_pico_error
def main() -> None:
    make_plots(list(load_params().models))


if __name__ == "__main__":
    main()
