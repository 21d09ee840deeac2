"""The one way a figure is made and saved: the house style, and PNGs whose bytes depend only on the figure."""

from __future__ import annotations

from pathlib import Path

from picollm.io import atomic_open

DPI = 110


def pyplot():
    """matplotlib's pyplot (headless) and seaborn, in the house style; imported on first use
    because they cost about a second and most stages draw nothing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt, sns


def save_png(fig, path: Path) -> None:
    """Atomically, without the Software tag: the same figure gives the same bytes."""
    plt, _ = pyplot()
    fig.tight_layout()
    with atomic_open(Path(path), "wb") as handle:
        fig.savefig(handle, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
