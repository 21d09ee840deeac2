"""The `plots` stage's figures (seaborn, Agg backend) and the tidy CSVs behind `dvc plots`.

PNGs, always the same names (dvc.yaml declares each one):

- loss_curves.png: every model's train and val loss (the DVCLive tsv logs), one colour per model;
- bpb_vs_params.png: val bits per byte against parameter count, with the entropy floor and the
  unigram baseline as horizontal lines;
- throughput.png: training tokens per second of every model (metrics/timings/train);
- over_training.png: every model's val loss, recurring-name loss and best heads at each training
  snapshot (metrics/interpret/<model>.json), on one time axis, so the Transformers' copying shows
  against the models that cannot copy;
- interpret/<model>/heads.png and attention.png, for each Transformer: its heads' scores at the end
  of training and where its strongest copying head looks on a story (from interpret@<model>'s
  metrics and attention example; picollm/interpret_plots.py draws them);
- every study's figures (`figures` of picollm/studies/<study>.py, drawn from metrics/sweeps/<study>.json
  on the `Canvas` this module hands over).

The sampling study draws its own quality-against-diversity figure (stage `sample`), and the
report picks up every PNG under plots/.

`plots/data/*.csv` hold the same numbers in long form (one row per model, split and x; a study's
columns are its `csv_fields`) for the
top-level `plots:` section of dvc.yaml, whose `lines_by_split` Vega-Lite template lives in
.dvc/plots/. `picollm plots-template` writes the offline HTML page template that
`dvc plots show` uses (.dvc/config `plots.html_template`): Vega, Vega-Lite and Vega-Embed inlined
from vl-convert, so the page needs no network.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from picollm import paths
from picollm.errors import PicoError
from picollm.figures import pyplot, save_png
from picollm.interpret_plots import draw_heads, phase_change_plot
from picollm.io import read_json, write_text
from picollm.studies.base import Canvas
from picollm.studies.plan import sweep_metrics
from picollm.studies.registry import ordered as studies

DATA_DIR = paths.PLOTS_DIR / "data"
# The `plots` stage's PNGs; PNG_NAMES adds stage `throughput`'s, for every figure of the pipeline.
PLOTS_STAGE_PNGS = ("loss_curves.png", "bpb_vs_params.png", paths.OVER_TRAINING_PLOT.name,
                    *(name for study in studies() for name in study.figures))
PNG_NAMES = (*PLOTS_STAGE_PNGS, paths.THROUGHPUT_PLOT.name)
HTML_TEMPLATE = Path(".dvc/plots/offline.html")
VEGA_LITE_VERSION = "5.21"  # DVC's templates are Vega-Lite 5 specs


# ------------------------------------------------------------------------------ helpers
def write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def _frame(rows: list[dict], columns: list[str]):
    import pandas as pd

    return pd.DataFrame(rows, columns=columns)


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


# ------------------------------------------------------------------------------ inputs
def read_tsv_log(path: Path) -> list[dict]:
    """A DVCLive metric log (timestamp, step, value columns) as [{step, loss}]."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        value_field = [f for f in (reader.fieldnames or []) if f not in ("timestamp", "step")]
        if not value_field:
            raise PicoError(f"{path} has no value column; rerun its train stage")
        return [{"step": int(row["step"]), "loss": float(row[value_field[-1]])} for row in reader]


def loss_curve_rows(models: list[str]) -> list[dict]:
    rows = []
    for model in models:
        for split in ("train", "val"):
            path = paths.train_log_dir(model) / "plots" / "metrics" / split / "loss.tsv"
            if path.is_file():
                rows += [{"model": model, "split": split, **row} for row in read_tsv_log(path)]
    return rows


def interpret_results(models: list[str]) -> dict[str, dict]:
    """Each model's interpret@ metrics, for the models that have them."""
    return {model: read_json(paths.interpret_metrics(model)) for model in models if paths.interpret_metrics(model).is_file()}


def snapshot_rows(results: dict[str, dict]) -> list[dict]:
    """Every model's interpret@ rows (one per training snapshot), each tagged with its model."""
    return [{"model": model, **row} for model, result in results.items() for row in result["snapshots"]]


def throughput_rows(models: list[str]) -> list[dict]:
    rows = []
    for model in models:
        path = paths.TIMINGS_DIR / "train" / f"{model}.json"
        if path.is_file():
            rows.append({"model": model, "tokens_per_second": float(read_json(path)["tokens_per_second"])})
    return sorted(rows, key=lambda r: -r["tokens_per_second"])


# ------------------------------------------------------------------------------ figures
def plot_over_training(rows: list[dict], path: Path) -> None:
    if rows:
        phase_change_plot(rows, path, title="every model over training: copying arrives with the drop in recurring-name loss")
        return
    plt, _ = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 3))
    _empty(ax, "no interpret@ results yet")
    save_png(fig, path)


def plot_loss_curves(rows: list[dict], path: Path) -> None:
    plt, sns = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    df = _frame(rows, ["model", "split", "step", "loss"])
    for ax, split in zip(axes, ("train", "val")):
        part = df[df["split"] == split]
        if part.empty:
            _empty(ax, f"no {split} loss logged")
            continue
        sns.lineplot(data=part, x="step", y="loss", hue="model", ax=ax, marker="o" if split == "val" else None, markersize=4)
        ax.set_title(f"{split} loss")
        ax.set_xlabel("step")
    axes[0].set_ylabel("cross-entropy (nats/token)")
    save_png(fig, path)


def plot_bpb_vs_params(models_doc: dict, path: Path) -> None:
    plt, sns = pyplot()
    rows = models_doc.get("models", [])
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    if not rows:
        _empty(ax, "no models evaluated")
    else:
        df = _frame(rows, ["model", "params", "val_bpb"])
        sns.scatterplot(data=df, x="params", y="val_bpb", hue="model", s=70, ax=ax, legend=False)
        # Neighbours in size alternate above and below their point, so the labels do not collide.
        for index, row in enumerate(sorted(rows, key=lambda r: r["params"])):
            ax.annotate(row["model"], (row["params"], row["val_bpb"]), textcoords="offset points",
                        xytext=(5, 5) if index % 2 == 0 else (5, -13), fontsize=9)
        ax.set_xscale("log")
        floor, unigram = models_doc.get("entropy_floor_bpb"), models_doc.get("unigram_val_bpb")
        top = max(1.3 * max(r["val_bpb"] for r in rows), 1.3 * (floor or 0.0))
        if floor is not None:
            ax.axhline(floor, color="black", linestyle="-", linewidth=1.2, label=f"entropy floor {floor:.3f}")
        if unigram is not None and unigram <= top:
            ax.axhline(unigram, color="grey", linestyle="--", linewidth=1, label=f"unigram baseline {unigram:.3f}")
            top = 1.08 * unigram
        elif unigram is not None:  # far above every model: named, not drawn, so the models keep the space
            ax.plot([], [], " ", label=f"unigram baseline {unigram:.3f} (above)")
        ax.set_ylim(0, top)
        if floor is not None or unigram is not None:
            ax.legend(loc="best")
        ax.set_xlabel("parameters (log scale)")
        ax.set_ylabel("val bits per byte")
        ax.set_title("Validation bits per byte against model size")
    save_png(fig, path)


def plot_throughput(rows: list[dict], path: Path) -> None:
    plt, sns = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * max(3, len(rows)) + 1.2))
    if not rows:
        _empty(ax, "no training timings")
    else:
        df = _frame(rows, ["model", "tokens_per_second"])
        sns.barplot(data=df, y="model", x="tokens_per_second", hue="model", legend=False, ax=ax)
        ax.set_xlabel("training tokens per second")
        ax.set_ylabel("")
        ax.set_title("Training throughput (this machine, this run)")
    save_png(fig, path)


def canvas() -> Canvas:
    plt, sns = pyplot()
    return Canvas(plt=plt, sns=sns, frame=_frame, empty=_empty)


# ------------------------------------------------------------------------------ the stage
def make_plots(models: list[str]) -> list[Path]:
    """Every PNG and CSV of the `plots` stage; returns the PNG paths written. Not the throughput
    figure: drawn from timings, which change on every run, it is stage `throughput`'s, so that
    retraining to the same bytes redraws nothing else."""
    out = paths.PLOTS_DIR
    curves = loss_curve_rows(models)
    write_csv(DATA_DIR / "loss_curves.csv", curves, ["model", "split", "step", "loss"])
    plot_loss_curves(curves, out / "loss_curves.png")
    plot_bpb_vs_params(read_json(paths.METRICS_DIR / "models.json"), out / "bpb_vs_params.png")
    interpreted = interpret_results(models)
    plot_over_training(snapshot_rows(interpreted), paths.OVER_TRAINING_PLOT)
    drawn = draw_interpret_heads(interpreted)

    kit = canvas()
    for study in studies():
        table = read_json(sweep_metrics(study.name))
        write_csv(DATA_DIR / f"{study.name}.csv", study.csv_rows(table), list(study.csv_fields))
        for name, fig in study.plot(table, kit).items():
            save_png(fig, out / name)
    return [out / name for name in PLOTS_STAGE_PNGS] + drawn


def draw_interpret_heads(results: dict[str, dict]) -> list[Path]:
    """Each Transformer's head figures (paths.interpret_figures), from interpret@'s outputs."""
    drawn = []
    for model, result in results.items():
        final, example = result["snapshots"][-1], paths.interpret_example(model)
        if "heads" in final and example.is_file():
            figures = paths.interpret_figures(model)
            drawn += draw_heads(model, final["heads"], read_json(example)["attention_example"],
                                figures["heads"], figures["attention"])
    return drawn


# ------------------------------------------------------------------------------ offline dvc plots
def offline_html_template() -> str:
    """A `dvc plots show --html-template` page with Vega, Vega-Lite and Vega-Embed inlined.

    It has no `{scripts}` placeholder, so DVC's CDN <script> tags are never inserted; the bundle
    (from vl-convert) defines window.vegaEmbed, which DVC's plot divs call.
    """
    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE_VERSION)
    if "</script" in bundle.lower():
        bundle = bundle.replace("</script", "<\\/script")
    for placeholder in ("{plot_divs}", "{scripts}", "{refresh_tag}"):
        if placeholder in bundle:
            raise PicoError(f"the vl-convert bundle contains {placeholder}, which DVC would replace; cannot inline it")
    versions = f"vega {vl_convert.get_vega_version()}, vega-lite {VEGA_LITE_VERSION}, vega-embed {vl_convert.get_vega_embed_version()}"
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n    {refresh_tag}\n    <meta charset=\"utf-8\">\n    <title>pico-llm plots</title>\n"
        f"    <!-- {versions}, inlined from vl-convert-python by `picollm plots-template`: no network needed -->\n"
        f"    <script>\n(() => {{\n{bundle}\n}})();\n    </script>\n"
        "    <style>\n        body { font-family: sans-serif; }\n        table { border-spacing: 15px; }\n    </style>\n"
        "</head>\n<body>\n    {plot_divs}\n</body>\n</html>\n"
    )


def write_html_template(target: Path = HTML_TEMPLATE) -> None:
    """The offline page template `dvc plots show` uses (.dvc/config's plots.html_template)."""
    write_text(target, offline_html_template())
