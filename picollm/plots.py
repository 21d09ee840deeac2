"""The `plots` stage's figures (seaborn, Agg backend) and the tidy CSVs behind `dvc plots`.

PNGs, always the same names (dvc.yaml declares each one):

- loss_curves.png: every model's train and val loss (the DVCLive tsv logs), one colour per model;
- bpb_vs_params.png: val bits per byte against parameter count, with the entropy floor and the
  unigram baseline as horizontal lines;
- throughput.png: training tokens per second of every model (metrics/timings/train);
- sweep_corpus_size.png, sweep_training_budget.png, sweep_overfitting.png, sweep_hparam_grid.png
  (a ranked bar chart) and sweep_hparam_grid_heatmap.png: the studies (metrics/sweeps/*.json).

The sampling study draws its own quality-against-diversity figure (stage `sample`), and the
report picks up every PNG under plots/.

`plots/data/*.csv` hold the same numbers in long form (one row per model, split and x) for the
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
from picollm.io import read_json, write_text
from picollm.studies.aggregate import config_label

DATA_DIR = paths.PLOTS_DIR / "data"
SWEEP_FILES = {name: paths.METRICS_DIR / "sweeps" / f"{name}.json" for name in ("corpus_size", "training_budget", "overfitting", "hparam_grid")}
PNG_NAMES = (
    "loss_curves.png", "bpb_vs_params.png", "throughput.png", "sweep_corpus_size.png", "sweep_training_budget.png",
    "sweep_overfitting.png", "sweep_hparam_grid.png", "sweep_hparam_grid_heatmap.png",
)
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


def throughput_rows(models: list[str]) -> list[dict]:
    rows = []
    for model in models:
        path = paths.TIMINGS_DIR / "train" / f"{model}.json"
        if path.is_file():
            rows.append({"model": model, "tokens_per_second": float(read_json(path)["tokens_per_second"])})
    return sorted(rows, key=lambda r: -r["tokens_per_second"])


# ------------------------------------------------------------------------------ figures
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


def corpus_size_rows(table: dict) -> list[dict]:
    return [{"model": r["model"], "split": split, "docs": r["docs"], "loss": r[f"{split}_loss"]}
            for r in table["rows"] for split in ("train", "val", "test")]


def plot_corpus_size(rows: list[dict], path: Path) -> None:
    plt, sns = pyplot()
    df = _frame([r for r in rows if r["split"] != "test"], ["model", "split", "docs", "loss"])
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    sns.lineplot(data=df, x="docs", y="loss", hue="model", style="split", markers=True, dashes=True, ax=ax)
    ax.set_xscale("log", base=2)
    sizes = sorted(df["docs"].unique())
    ax.set_xticks(sizes, [f"{int(d):,}" for d in sizes])
    ax.minorticks_off()
    ax.set_xlabel("train documents (log scale)")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("corpus_size: loss against corpus size, fixed steps")
    save_png(fig, path)


def training_budget_rows(table: dict) -> list[dict]:
    return [{"model": r["model"], "split": split, "steps": r["steps"], "loss": r[f"{split}_loss"]}
            for r in table["rows"] for split in ("train", "val")]


def plot_training_budget(rows: list[dict], table: dict, path: Path) -> None:
    plt, sns = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    df = _frame(rows, ["model", "split", "steps", "loss"])
    sns.lineplot(data=df, x="steps", y="loss", hue="model", style="split", markers=True, ax=axes[0])
    axes[0].set_title("final loss against the step budget")
    axes[0].set_ylabel("loss (nats/token)")
    curves = _frame([c for c in table.get("curves", []) if c["split"] == "val"], ["model", "steps", "step", "loss"])
    if curves.empty:
        _empty(axes[1], "no periodic val loss logged")
    else:
        curves["budget"] = curves["steps"].map(lambda s: f"{s} steps")
        sns.lineplot(data=curves, x="step", y="loss", hue="model", style="budget", markers=True, ax=axes[1])
        axes[1].set_title("val loss during training, every budget")
        axes[1].set_ylabel("val loss (periodic estimate)")
    save_png(fig, path)


def overfitting_rows(table: dict) -> list[dict]:
    return [{"model": c["model"], "split": c["split"], "step": c["step"], "loss": c["loss"]} for c in table.get("curves", [])]


def plot_overfitting(rows: list[dict], path: Path) -> None:
    plt, sns = pyplot()
    df = _frame(rows, ["model", "split", "step", "loss"])
    fig, ax = plt.subplots(figsize=(8, 4.8))
    sns.lineplot(data=df, x="step", y="loss", hue="model", style="split", ax=ax)
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("overfitting: loss on the trained documents against the held-out ones")
    save_png(fig, path)


def hparam_rows(table: dict) -> list[dict]:

    rows = [{"config": config_label(r), "model": r["model"], "val_loss": r["val_loss"], "val_bpb": r["val_bpb"]} for r in table["rows"]]
    return sorted(rows, key=lambda r: (r["val_loss"], r["config"]))


def plot_hparam_ranking(rows: list[dict], path: Path) -> None:
    plt, sns = pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(rows) + 1.6))
    df = _frame(rows, ["config", "model", "val_loss"])
    sns.barplot(data=df, y="config", x="val_loss", hue="model", dodge=False, ax=ax)
    low, high = df["val_loss"].min(), df["val_loss"].max()
    ax.set_xlim(low - 0.1 * (high - low + 0.05), high + 0.05 * (high - low + 0.05))
    ax.set_ylabel("")
    ax.set_xlabel("val loss (lower is better)")
    ax.set_title(f"hparam_grid, ranked by val loss\nbest: {rows[0]['config']}", fontsize=10)
    save_png(fig, path)


def plot_hparam_heatmap(table: dict, path: Path) -> None:
    """Mean val loss over the two grid axes with the most values, one panel per model."""
    plt, sns = pyplot()
    axes_names = ["embed", "block_size", "layers", "heads", "lr", "batch_size"]
    df = _frame(table["rows"], ["model", *axes_names, "val_loss"])
    varied = sorted((a for a in axes_names if df[a].nunique() > 1), key=lambda a: -df[a].nunique())
    models = list(dict.fromkeys(df["model"]))
    shade = {"annot": True, "fmt": ".3f", "cmap": "viridis_r", "cbar": False, "vmin": df["val_loss"].min(), "vmax": df["val_loss"].max()}
    if len(varied) >= 2:
        cols, rows_axis = varied[0], varied[1]
        fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 3.8), squeeze=False)
        for ax, model in zip(axes[0], models):
            grid = df[df["model"] == model].pivot_table(index=rows_axis, columns=cols, values="val_loss", aggfunc="mean")
            sns.heatmap(grid, ax=ax, **shade)
            ax.set_title(f"{model}: val loss (mean over the other axes)" if len(varied) > 2 else f"{model}: val loss")
    else:
        cols = varied[0] if varied else "embed"
        fig, ax = plt.subplots(figsize=(6.5, 0.6 * len(models) + 1.8))
        grid = df.pivot_table(index="model", columns=cols, values="val_loss", aggfunc="mean")
        sns.heatmap(grid, ax=ax, **shade)
        ax.set_title("hparam_grid: val loss")
    save_png(fig, path)


# ------------------------------------------------------------------------------ the stage
def make_plots(models: list[str]) -> list[Path]:
    """Every PNG and CSV of the `plots` stage; returns the PNG paths written."""
    out = paths.PLOTS_DIR
    tables = {name: read_json(path) for name, path in SWEEP_FILES.items()}

    curves = loss_curve_rows(models)
    write_csv(DATA_DIR / "loss_curves.csv", curves, ["model", "split", "step", "loss"])
    plot_loss_curves(curves, out / "loss_curves.png")
    plot_bpb_vs_params(read_json(paths.METRICS_DIR / "models.json"), out / "bpb_vs_params.png")
    plot_throughput(throughput_rows(models), out / "throughput.png")

    rows = corpus_size_rows(tables["corpus_size"])
    write_csv(DATA_DIR / "corpus_size.csv", rows, ["model", "split", "docs", "loss"])
    plot_corpus_size(rows, out / "sweep_corpus_size.png")

    rows = training_budget_rows(tables["training_budget"])
    write_csv(DATA_DIR / "training_budget.csv", rows, ["model", "split", "steps", "loss"])
    plot_training_budget(rows, tables["training_budget"], out / "sweep_training_budget.png")

    rows = overfitting_rows(tables["overfitting"])
    write_csv(DATA_DIR / "overfitting.csv", rows, ["model", "split", "step", "loss"])
    plot_overfitting(rows, out / "sweep_overfitting.png")

    rows = hparam_rows(tables["hparam_grid"])
    write_csv(DATA_DIR / "hparam_grid.csv", rows, ["config", "model", "val_loss", "val_bpb"])
    plot_hparam_ranking(rows, out / "sweep_hparam_grid.png")
    plot_hparam_heatmap(tables["hparam_grid"], out / "sweep_hparam_grid_heatmap.png")
    return [out / name for name in PNG_NAMES]


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
