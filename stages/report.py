"""Stage `report`: reports/index.html, a self-contained page of tables, plots, findings and samples."""

from picollm import paths
from picollm.errors import exit_on_pico_error
from picollm.io import write_text
from picollm.params import load_params
from picollm.report import build_report


@exit_on_pico_error
def main() -> None:
    write_text(paths.REPORTS_DIR / "index.html", build_report(list(load_params().models)))


if __name__ == "__main__":
    main()
