"""What a study declares beyond its params and points (its class in picollm/config.py, which also
says how a point trains): the numbers its summary keeps, the sentences of its findings, its figures
and its tables in the report.

A study module (picollm/studies/<study>.py) subclasses `Study` and registers an instance in
picollm/studies/registry.py. The methods here are the defaults; everything is plain Python on the
points' JSON (no numpy, torch or matplotlib: figures draw on the `Canvas` that picollm/plots.py
passes in), so the aggregate, plots and report stages stay cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from picollm.studies import fit
from picollm.studies.plan import point_key

ROUND = 6
LOSSES = ("train_loss", "val_loss", "test_loss", "val_bpb")
ROW_FIELDS = ("steps", "batch_size", "block_size", "lr", "train_docs", "train_tokens", "params", *LOSSES)


@dataclass(frozen=True)
class Canvas:
    """The drawing kit picollm/plots.py hands to a study: pyplot, seaborn and two helpers."""

    plt: Any
    sns: Any
    frame: Callable[[list[dict], list[str]], Any]   # rows -> pandas DataFrame with these columns
    empty: Callable[[Any, str], None]               # an axis that says there is nothing to draw


@dataclass(frozen=True)
class ReportTable:
    """A table of the report: a lead sentence, headers, rows, and the indexes of numeric columns."""

    lead: str
    headers: list[str]
    rows: list[list]
    numeric: frozenset[int] = frozenset()


class Study:
    name = ""
    title = ""
    figures: dict[str, str] = {}        # PNG name under plots/ -> its caption in the report
    csv_fields: tuple[str, ...] = ()    # plots/data/<study>.csv, behind dvc.yaml's `plots:`
    noise_field = "val_loss"            # the quantity whose spread across seeds is the study's noise

    def axis_fields(self, axes: list[str]) -> list[str]:
        return [a for a in axes if a not in ROW_FIELDS]

    def row(self, doc: dict, axes: list[str]) -> dict:
        """One point's tidy row: its key, its axis values, its size and losses."""
        return {"point": doc["point"], **{a: doc[a] for a in self.axis_fields(axes)}, **{f: doc[f] for f in ROW_FIELDS}}

    def extras(self, docs: list[dict]) -> dict[str, Any]:
        """Anything beyond the rows that its figure or report needs (curves, samples)."""
        return {}

    def summarize(self, table: dict, section) -> dict[str, Any]:
        """The numbers its findings quote (from the table's rows and noise, and its params section)."""
        raise NotImplementedError

    def findings(self, table: dict) -> list[str]:
        raise NotImplementedError

    def csv_rows(self, table: dict) -> list[dict]:
        raise NotImplementedError

    def plot(self, table: dict, canvas: Canvas) -> dict[str, Any]:
        """PNG name -> matplotlib figure, one per name of `figures`."""
        raise NotImplementedError

    def report_tables(self, table: dict) -> list[ReportTable]:
        return [noise_table(table)]


class ScalingStudy(Study):
    """A study along one axis whose held-out loss the law L(x) = E + A·x^-α is fitted to, over the
    row field `law_field`. Per model, its summary holds the study's own numbers at the two ends
    (`ends`), the effect between them against the seed spread, the law, anything the study
    extrapolates from it (`extrapolate`) and the check of the law fitted without the largest point;
    its findings are the study's sentences about each model (`model_findings`) and the points'
    distance from the unigram baseline. Its CSV has train and held-out loss against the third of
    `csv_fields`."""

    law_field = ""

    def ends(self, first: dict, last: dict) -> dict[str, Any]:
        raise NotImplementedError

    def extrapolate(self, law: dict, section) -> dict[str, Any]:
        return {}

    def model_findings(self, model: str, summary: dict, noise: dict) -> list[str]:
        raise NotImplementedError

    def summarize(self, table: dict, section) -> dict[str, Any]:
        summary: dict[str, Any] = {}
        for model, group in by_model(table["rows"]).items():
            group = sorted(group, key=lambda r: r[self.law_field])
            x, y = [r[self.law_field] for r in group], [r["val_loss"] for r in group]
            law = fit.fit_law(x, y)
            summary[model] = {
                **self.ends(group[0], group[-1]),
                **against_noise(group[0]["val_loss"] - group[-1]["val_loss"], table["noise"]),
                "law": law,
                **self.extrapolate(law, section),
                "holdout": fit.holdout_check(x, y) if len(group) > fit.MIN_POINTS else None,
            }
        return summary

    def findings(self, table: dict) -> list[str]:
        out = [line for model, s in table["summary"].items() for line in self.model_findings(model, s, table["noise"])]
        share = unigram_share(table)
        return out + ([share] if share else [])

    def csv_rows(self, table: dict) -> list[dict]:
        axis = self.csv_fields[2]
        return [{"model": r["model"], "split": split, axis: r[axis], "loss": r[f"{split}_loss"]}
                for r in table["rows"] for split in ("train", "val")]


# ------------------------------------------------------------------------------ shared numbers
def by_model(rows: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["model"], []).append(row)
    return grouped


def noise_section(field: str, point: dict[str, Any], runs: list[dict]) -> dict[str, Any]:
    """The noise point's runs (the study's own run at `seed`, then the reruns) and their spread in `field`."""
    values = [run[field] for run in runs]
    return {
        "point": point_key(point), **point, "field": field,
        "runs": [{"seed": run["seed"], **{f: run[f] for f in LOSSES}} for run in runs],
        "seeds": len(runs), "spread": round(max(values) - min(values), ROUND),
        "mean": round(sum(values) / len(values), ROUND),
    }


def against_noise(effect: float, noise: dict) -> dict[str, Any]:
    """An effect next to the seed spread: how many spreads it is, and whether it exceeds it."""
    spread = noise["spread"]
    return {"effect": round(effect, ROUND), "spread": spread,
            "times_spread": round(abs(effect) / spread, 1) if spread > 0 else None,
            "exceeds_noise": abs(effect) > spread}


def change(a: float, b: float) -> str:
    if abs(b - a) < 0.0005:
        return f"stays at {a:.3f}"
    return f"{'falls' if b < a else 'rises'} from {a:.3f} to {b:.3f}"


def noise_words(verdict: dict, noise: dict) -> str:
    """`9.1x the seed spread (0.040 across 3 seeds at lstm-200)`, or that the effect is inside it."""
    where = f"{noise['spread']:.3f} across {noise['seeds']} seeds at {noise['point']}"
    if not verdict["exceeds_noise"]:
        return f"within the seed spread ({where}), so no effect is measured"
    times = f"{verdict['times_spread']:g}x" if verdict["times_spread"] is not None else "beyond"
    return f"{times} the seed spread ({where})"


def law_words(law: dict, x_name: str) -> str:
    """`E = 0.748 ± 0.091, A = 2.49e+04 ± 2.4e+04, α = 0.889 ± 0.096` (or why there is no fit)."""
    if not law["converged"]:
        return f"no law fitted: {law['reason']}"
    return (f"L({x_name}) = E + A·{x_name}^-α with E = {law['E']:.3f} ± {law['E_se']:.3f}, "
            f"A = {law['A']:.3g} ± {law['A_se']:.2g}, α = {law['alpha']:.3f} ± {law['alpha_se']:.3f} "
            f"({law['points']} points, rms residual {law['rmse']:.3f})")


Curve = tuple[list[float], list[float], str, str]  # xs, ys, matplotlib format, legend label


def law_curve(law: dict, start: float, end: float, style: str, label: str) -> Curve:
    """A fitted law drawn from x = start to end (log-spaced)."""
    grid = [start * (end / start) ** (i / 99) for i in range(100)]
    return grid, [fit.predict(law, x) for x in grid], style, f"{label}: E={law['E']:.2f}, α={law['alpha']:.2f}"


def law_figure(canvas: Canvas, table: dict, x_field: str, curves: Callable[[dict, list[float]], list[Curve]],
               title: str, xlabel: str):
    """Train and held-out loss of every model against `x_field` (log scale), the `curves` the study
    draws through them (its fitted laws, given the model's summary and x values), and the seed spread."""
    plt = canvas.plt
    fig, ax = plt.subplots(figsize=(8, 4.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (model, group) in enumerate(by_model(table["rows"]).items()):
        colour = colours[index % len(colours)]
        group = sorted(group, key=lambda r: r[x_field])
        x = [r[x_field] for r in group]
        ax.plot(x, [r["val_loss"] for r in group], "o", color=colour, label=f"{model} held-out")
        ax.plot(x, [r["train_loss"] for r in group], "s--", color=colour, alpha=0.5, markersize=4, label=f"{model} train")
        for xs, ys, style, label in curves(table["summary"][model], x):
            ax.plot(xs, ys, style, color=colour, linewidth=1.1, markersize=12, label=label)
        draw_noise(ax, table, x_field, colour)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def draw_noise(ax, table: dict, x_field: str, colour) -> None:
    """The seed spread as an error bar at the noise point (min to max over its seeds)."""
    noise = table["noise"]
    row = next((r for r in table["rows"] if r["point"] == noise["point"]), None)
    if row is None:
        return
    values = [run[noise["field"]] for run in noise["runs"]]
    low, high = min(values), max(values)
    ax.errorbar([row[x_field]], [(low + high) / 2], yerr=[[(high - low) / 2], [(high - low) / 2]], fmt="none",
                ecolor=colour, elinewidth=2, capsize=5, label=f"seed spread ({noise['seeds']} seeds)")


def noise_table(table: dict) -> ReportTable:
    noise = table["noise"]
    return ReportTable(
        lead=(f"Noise: the point {noise['point']} trained with {noise['seeds']} seeds; its {noise['field'].replace('_', ' ')} "
              f"spreads over {noise['spread']:.3f} (max - min). A finding is stated only where its effect exceeds that."),
        headers=["seed", "train loss", "val loss", "test loss", "val bpb"],
        rows=[[r["seed"], r["train_loss"], r["val_loss"], r["test_loss"], r["val_bpb"]] for r in noise["runs"]],
        numeric=frozenset({0, 1, 2, 3, 4}),
    )


def unigram_share(table: dict) -> str:
    """How far the points are from the unigram baseline: the worst point's val bpb as a share of it."""
    unigram = table.get("unigram_val_bpb")
    if not unigram or not table["rows"]:
        return ""
    worst = max(r["val_bpb"] for r in table["rows"])
    return f"The worst point's val bpb is {worst / unigram:.2f}x the unigram baseline's ({unigram:.3f})."
