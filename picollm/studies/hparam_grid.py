"""Study `hparam_grid`: the Cartesian grid of embed, block_size, layers, heads, lr and batch_size.

Every point resizes its model (plan.point_spec) and trains the same number of steps. The summary
ranks the configurations, states the best against the worst, and the main effect of each axis
that varies (its values' mean val loss over the rest of the grid), each against the seed spread.
"""

from __future__ import annotations

from typing import Any

from picollm.studies.base import ReportTable, Study, against_noise, by_model, noise_table, noise_words, unigram_share

AXES = ("embed", "block_size", "layers", "heads", "lr", "batch_size")


def config_label(row: dict) -> str:
    """A grid point in words: `gptoss e128 b64 l2 h4 lr0.003 bs8`."""
    return (f"{row['model']} e{row['embed']} b{row['block_size']} l{row['layers']} h{row['heads']} "
            f"lr{row['lr']:g} bs{row['batch_size']}")


def _means(rows: list[dict], axis: str) -> dict:
    groups: dict = {}
    for row in rows:
        groups.setdefault(row[axis], []).append(row["val_loss"])
    return {value: round(sum(v) / len(v), 6) for value, v in sorted(groups.items())}


class HparamGrid(Study):
    name = "hparam_grid"
    title = "Hyper-parameter grid"
    figures = {
        "sweep_hparam_grid.png": "Study hparam_grid: every configuration ranked by val loss; the band is the seed spread above the best.",
        "sweep_hparam_grid_heatmap.png": "Study hparam_grid: val loss over the two grid axes with the most values.",
    }
    csv_fields = ("config", "model", "val_loss", "val_bpb")

    def summarize(self, table: dict, section) -> dict[str, Any]:
        rows, noise = table["rows"], table["noise"]
        summary: dict[str, Any] = {}
        for model, group in by_model(rows).items():
            best = min(group, key=lambda r: (r["val_loss"], r["point"]))
            worst = max(group, key=lambda r: (r["val_loss"], r["point"]))
            varied = [a for a in AXES if len({r[a] for r in group}) > 1]
            axes = {}
            for axis in varied:
                means = _means(group, axis)
                axes[axis] = {"means": {str(k): v for k, v in means.items()}, "best": min(means, key=means.get),
                              **against_noise(max(means.values()) - min(means.values()), noise)}
            summary[model] = {
                "best_point": best["point"], "best_config": config_label(best), "best_val_loss": best["val_loss"],
                "worst_point": worst["point"], "worst_config": config_label(worst), "worst_val_loss": worst["val_loss"],
                **against_noise(worst["val_loss"] - best["val_loss"], noise), "axes": axes,
                "depends": _dependencies(group, varied, noise["spread"]),
            }
        best = min(rows, key=lambda r: (r["val_loss"], r["point"]))
        summary["best"] = {"point": best["point"], "config": config_label(best), "val_loss": best["val_loss"], "val_bpb": best["val_bpb"]}
        return summary

    def findings(self, table: dict) -> list[str]:
        summary, noise = table["summary"], table["noise"]
        best = summary["best"]
        out = [f"The best configuration is {best['config']} (val loss {best['val_loss']:.3f}, {best['val_bpb']:.3f} bpb)."]
        for model, s in summary.items():
            if model == "best":
                continue
            if s["best_point"] == s["worst_point"]:
                out.append(f"{model}: one configuration only ({s['best_config']}, val loss {s['best_val_loss']:.3f}).")
                continue
            out.append(f"{model}: the best, {s['best_config']} ({s['best_val_loss']:.3f}), beats the worst, {s['worst_config']} "
                       f"({s['worst_val_loss']:.3f}), by {s['effect']:.3f}: {noise_words(s, noise)}.")
            for axis, a in s["axes"].items():
                means = ", ".join(f"{v:.3f} at {axis} {k}" for k, v in a["means"].items())
                out.append(f"{model} {axis}: mean val loss {means}; the spread between them, {a['effect']:.3f}, is "
                           f"{noise_words(a, noise)}.")
            for d in s["depends"]:
                where = ", ".join(f"{d['axis']} {b} at {d['by']} {v} (by {m:.3f})" for v, b, m in d["best"])
                out.append(f"{model}: the best {d['axis']} depends on {d['by']}: {where}, each margin beyond the seed spread.")
        share = unigram_share(table)
        return out + ([share] if share else [])

    def csv_rows(self, table: dict) -> list[dict]:
        rows = [{"config": config_label(r), "model": r["model"], "val_loss": r["val_loss"], "val_bpb": r["val_bpb"]} for r in table["rows"]]
        return sorted(rows, key=lambda r: (r["val_loss"], r["config"]))

    def plot(self, table: dict, canvas) -> dict[str, Any]:
        return {"sweep_hparam_grid.png": self._ranking(table, canvas),
                "sweep_hparam_grid_heatmap.png": self._heatmap(table, canvas)}

    def _ranking(self, table: dict, canvas):
        plt, sns = canvas.plt, canvas.sns
        rows = self.csv_rows(table)
        fig, ax = plt.subplots(figsize=(10, 0.38 * len(rows) + 1.8))
        df = canvas.frame(rows, ["config", "model", "val_loss"])
        sns.barplot(data=df, y="config", x="val_loss", hue="model", dodge=False, ax=ax)
        low, high = df["val_loss"].min(), df["val_loss"].max()
        spread = table["noise"]["spread"]
        ax.axvspan(low, low + spread, color="grey", alpha=0.25, label=f"seed spread above the best ({spread:.3f})")
        pad = high - low + spread + 0.05
        ax.set_xlim(low - 0.1 * pad, max(high, low + spread) + 0.05 * pad)
        ax.set_ylabel("")
        ax.set_xlabel("val loss (lower is better)")
        ax.set_title(f"hparam_grid, ranked by val loss\nbest: {rows[0]['config']}", fontsize=10)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return fig

    def _heatmap(self, table: dict, canvas):
        """Mean val loss over the two grid axes with the most values, one panel per model."""
        plt, sns = canvas.plt, canvas.sns
        df = canvas.frame(table["rows"], ["model", *AXES, "val_loss"])
        varied = sorted((a for a in AXES if df[a].nunique() > 1), key=lambda a: -df[a].nunique())
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
        return fig

    def report_tables(self, table: dict) -> list[ReportTable]:
        rows = sorted(table["rows"], key=lambda r: (r["val_loss"], r["point"]))
        ranking = ReportTable(
            lead="Every configuration, ranked by val loss.",
            headers=["rank", "model", "embed", "block", "layers", "heads", "lr", "batch", "params", "val loss", "val bpb"],
            rows=[[i + 1, r["model"], r["embed"], r["block_size"], r["layers"], r["heads"], f"{r['lr']:g}", r["batch_size"],
                   r["params"], r["val_loss"], r["val_bpb"]] for i, r in enumerate(rows)],
            numeric=frozenset({0, 2, 3, 4, 5, 6, 7, 8, 9, 10}),
        )
        return [ranking, noise_table(table)]


def _dependencies(rows: list[dict], varied: list[str], spread: float) -> list[dict]:
    """Where the best value of one axis changes with another's, each best ahead of the runner-up by
    more than the seed spread: [{axis, by, best: [(by value, best axis value, margin)]}]."""
    found = []
    for axis in varied:
        for by in varied:
            if by == axis:
                continue
            best = []
            for value in sorted({r[by] for r in rows}):
                means = sorted((m, k) for k, m in _means([r for r in rows if r[by] == value], axis).items())
                best.append((value, means[0][1], round(means[1][0] - means[0][0], 6)))
            if len({b for _, b, _ in best}) > 1 and all(margin > spread for _, _, margin in best):
                found.append({"axis": axis, "by": by, "best": best})
    return found


STUDY = HparamGrid()
