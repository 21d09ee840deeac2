"""Figures of what the models attend to (see picollm/interpret.py for the scores drawn here).

- `head_heatmap`: scores per layer and head (name copy, induction, previous token), one panel each;
- `phase_change_plot`: validation loss, the cost of recurring names and the best head's
  induction and name-copy scores against training tokens, one panel each on a shared axis, with
  a line where a head first reaches the threshold: they move together, as one event;
- `attention_picture`: one story's text, shaded by where one head looks from chosen positions;
- `draw_heads`: a Transformer's heatmap and attention picture, as the `plots` stage draws them.

Same inputs, same PNG bytes (picollm.plots.save_png). Figures are built without pyplot's global
state; the seaborn theme is the one picollm/plots.py uses. No torch: the inputs are plain lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from picollm.errors import PicoError
from picollm.figures import save_png

INDUCTION_THRESHOLD = 0.4  # TransformerLens / ARENA: a head at or above it is an induction head
CHARS_PER_LINE = 96  # attention_picture's text width
MONO_ADVANCE = 0.602  # DejaVu Sans Mono's glyph advance, in em


def _figure(width: float, height: float):
    import seaborn as sns
    from matplotlib.figure import Figure

    sns.set_theme(style="whitegrid", context="notebook")  # picollm/plots.py's house style
    return Figure(figsize=(width, height)), sns


def _matrix(scores: Sequence[Sequence[float]], name: str) -> np.ndarray:
    grid = np.asarray(scores, dtype=np.float64)
    if grid.ndim != 2 or grid.size == 0:
        raise PicoError(f"{name} must be a non-empty layers x heads table, got shape {grid.shape}")
    return grid


def head_heatmap(panels: Sequence[tuple[str, Sequence[Sequence[float]]]], path: Path, title: str = "") -> None:
    """One layers x heads heatmap per (label, scores) panel, all on 0..1, heads at or above 0.4 outlined."""
    grids = [(label, _matrix(scores, f"{label} scores")) for label, scores in panels]
    if not grids:
        raise PicoError("head_heatmap needs at least one (label, scores) panel")
    layers, heads = grids[0][1].shape
    fig, sns = _figure(width=len(grids) * (0.75 * heads + 2.2), height=0.55 * layers + 1.8)
    from matplotlib.patches import Rectangle

    for index, (label, grid) in enumerate(grids):
        ax = fig.add_subplot(1, len(grids), index + 1)
        sns.heatmap(grid, ax=ax, annot=True, fmt=".2f", vmin=0.0, vmax=1.0, cmap="viridis", cbar=index == len(grids) - 1,
                    annot_kws={"fontsize": 8}, linewidths=0.5, linecolor="white")
        for layer, head in zip(*np.nonzero(grid >= INDUCTION_THRESHOLD)):
            ax.add_patch(Rectangle((head, layer), 1, 1, fill=False, edgecolor="red", linewidth=2))
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_title(f"{label} (>= {INDUCTION_THRESHOLD} outlined)", fontsize=10)
    if title:
        fig.suptitle(title)
    save_png(fig, path)


HEAD_PANELS = ("max_induction_score", "max_name_copy_score")  # 0..1 scores of the best head
PHASE_PANELS = (
    ("val_loss", "val loss (nats/token)"),
    ("recurring_name_nats_per_token", "recurring name\n(nats/token)"),
    ("max_induction_score", "best head's induction\n(random tokens)"),
    ("max_name_copy_score", "best head's name copy\n(the stories)"),
)


def phase_change_plot(rows: Sequence[dict], path: Path, title: str = "") -> None:
    """One dict per training snapshot: tokens, val_loss, recurring_name_nats_per_token,
    max_induction_score (None where unknown) and optionally model (one colour each)."""
    if not rows:
        raise PicoError("phase_change_plot needs at least one snapshot row")
    required = ("tokens", *(k for k, _ in PHASE_PANELS if k != "max_name_copy_score"))  # the latter: optional
    missing = [key for key in required if key not in rows[0]]
    if missing:
        raise PicoError(f"snapshot rows lack {missing}; each row needs {', '.join(required)}")
    fig, sns = _figure(width=8.5, height=7.0)
    models = list(dict.fromkeys(str(row.get("model", "")) for row in rows))
    colours = dict(zip(models, sns.color_palette(n_colors=len(models))))
    axes = [fig.add_subplot(len(PHASE_PANELS), 1, 1)]
    axes += [fig.add_subplot(len(PHASE_PANELS), 1, i + 1, sharex=axes[0]) for i in range(1, len(PHASE_PANELS))]
    for model in models:
        own = sorted((row for row in rows if str(row.get("model", "")) == model), key=lambda row: row["tokens"])
        onset = next((row["tokens"] for row in own
                      if max(row.get(key) or 0.0 for key in HEAD_PANELS) >= INDUCTION_THRESHOLD), None)
        for ax, (key, _) in zip(axes, PHASE_PANELS):
            points = [(row["tokens"] / 1e6, row[key]) for row in own if row.get(key) is not None]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, color=colours[model], label=model or None)
            if onset is not None:
                ax.axvline(onset / 1e6, color=colours[model], linestyle=":", linewidth=1.2)
    for ax, (key, _) in zip(axes, PHASE_PANELS):
        if key in HEAD_PANELS:  # on the scale where 0.4 means an induction (or copying) head, so noise stays flat
            ax.axhline(INDUCTION_THRESHOLD, color="grey", linestyle="--", linewidth=1)
            ax.set_ylim(0.0, 1.0)
    for ax, (_, label) in zip(axes, PHASE_PANELS):
        ax.set_ylabel(label, fontsize=9)
        ax.tick_params(labelbottom=ax is axes[-1])
    axes[-1].set_xlabel(f"training tokens (millions); dotted: first snapshot with a head >= {INDUCTION_THRESHOLD}")
    if any(models):
        axes[0].legend(loc="best", fontsize=8)
    axes[0].set_title(title or "the copying head and the loss on recurring names arrive together")
    save_png(fig, path)


def _token_layout(texts: list[str]) -> list[tuple[int, int, str]]:
    """(line, column, shown text) of each token when the text wraps at CHARS_PER_LINE characters."""
    placed, line, column = [], 0, 0
    for text in texts:
        shown = text.replace("\n", "\\n").replace("\t", "\\t")
        if column and column + len(shown) > CHARS_PER_LINE:
            line, column = line + 1, 0
        placed.append((line, column, shown))
        column += max(len(shown), 1)
    return placed


def attention_picture(tokens: Sequence[str], queries: Sequence[int], rows: Sequence[Sequence[float]],
                      path: Path, title: str = "") -> None:
    """One panel per query position: the story's tokens, each shaded by the attention that query
    pays it (`rows[i]`, query `queries[i]`'s row of one head's pattern, one weight per token,
    scaled to the row's largest weight); the query is boxed red, the token it looks at most black."""
    from matplotlib.patches import Rectangle

    texts = [str(token) for token in tokens]
    queries = list(queries)
    if not queries or any(not 0 <= q < len(texts) for q in queries):
        raise PicoError(f"query positions {queries} are not allowed; give at least one position in [0, {len(texts)})")
    weights = np.asarray(rows, dtype=np.float64)
    if weights.shape != (len(queries), len(texts)):
        raise PicoError(f"the attention rows must be {len(queries)} x {len(texts)} (one row per query, one weight per token), "
                        f"got {weights.shape}")
    layout = _token_layout(texts)
    n_lines = layout[-1][0] + 1
    panel_height = 0.28 * n_lines + 0.6
    width = 13.0
    fig, sns = _figure(width=width, height=panel_height * len(queries) + (0.4 if title else 0.0))
    colour = sns.color_palette("rocket_r", as_cmap=True)
    # One character cell per x unit: the font whose glyph advance fills it (the axes span ~96% of the width).
    fontsize = 0.96 * width * 72 / CHARS_PER_LINE / MONO_ADVANCE * 0.95
    for index, query in enumerate(queries):
        ax = fig.add_subplot(len(queries), 1, index + 1)
        row = weights[index]
        target = int(np.argmax(row[: query + 1]))
        scale = row[target] if row[target] > 0 else 1.0
        for position, (line, column, shown) in enumerate(layout):
            cell_width = max(len(shown), 1)
            if position <= query:
                ax.add_patch(Rectangle((column, line), cell_width, 1, facecolor=colour(row[position] / scale), linewidth=0))
            edge = "red" if position == query else "black" if position == target else None
            if edge:
                ax.add_patch(Rectangle((column, line), cell_width, 1, fill=False, edgecolor=edge, linewidth=1.8))
            dark = position <= query and row[position] / scale > 0.6
            ax.text(column, line + 0.5, shown, family="DejaVu Sans Mono", fontsize=fontsize, va="center", ha="left",
                    color="white" if dark else "black" if position <= query else "silver")
        ax.set_xlim(0, CHARS_PER_LINE)
        ax.set_ylim(n_lines, 0)
        ax.set_axis_off()
        ax.set_title(f"position {query} {texts[query]!r} looks most at {target} {texts[target]!r} "
                     f"(weight {row[target]:.2f}; shading relative to it)", fontsize=10, loc="left")
    if title:
        fig.suptitle(title)
    save_png(fig, path)


def draw_heads(name: str, heads: dict, example: dict | None, heatmap: Path, picture: Path) -> list[Path]:
    """A Transformer's figures at the end of training (the `plots` stage draws them): its heads'
    name-copy, story-induction and previous-token scores as heatmaps, and, given interpret@'s
    attention example, where its strongest copying head looks on a story. Returns the paths drawn."""
    head_heatmap([("name copy (stories)", heads["name_copy"]), ("induction (stories)", heads["text_induction"]),
                  ("previous token (random)", heads["previous_token"])], heatmap,
                 title=f"{name}: what each head does at the end of training")
    if example is None or not example["queries"]:
        return [heatmap]
    attention_picture(example["tokens"], example["queries"], example["rows"], picture,
                      title=f"{name}: layer {example['layer']} head {example['head']} predicting a recurring name")
    return [heatmap, picture]
