"""The `plots` and `report` stages, and `dvc plots show` working offline."""

from __future__ import annotations

import base64
import configparser
import csv
import re

import pytest
import yaml

from picollm import plots, report
from picollm.profiles import PROJECT_ROOT, run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", re.I)


def models_of(repo) -> list[str]:
    return list(yaml.safe_load((repo / "params.yaml").read_text())["models"])


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------------------------------------ the real pipeline
def test_plots_stage_writes_every_png_and_the_csvs_behind_dvc_plots(smoke_repo):
    for name in plots.PNG_NAMES:
        assert (smoke_repo / "plots" / name).read_bytes()[:8] == PNG_MAGIC, name
    curves = read_csv(smoke_repo / "plots/data/loss_curves.csv")
    assert {r["model"] for r in curves} == set(models_of(smoke_repo))
    assert {r["split"] for r in curves} == {"train", "val"}
    for name, x in (("corpus_size", "docs"), ("training_budget", "steps"), ("overfitting", "step")):
        rows = read_csv(smoke_repo / f"plots/data/{name}.csv")
        assert rows and {"model", "split", x, "loss"} == set(rows[0]), name
    ranked = read_csv(smoke_repo / "plots/data/hparam_grid.csv")
    assert [float(r["val_loss"]) for r in ranked] == sorted(float(r["val_loss"]) for r in ranked)


def test_report_is_self_contained_and_holds_every_plot_finding_and_model(smoke_repo):
    page = (smoke_repo / "reports/index.html").read_text(encoding="utf-8")
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page, re.I)
    images = re.findall(r'<img alt="[^"]+" src="data:image/png;base64,([^"]+)"', page)
    pngs = sorted((smoke_repo / "plots").rglob("*.png"))  # plots/interpret/<model>/ too
    assert len(images) == len(pngs) >= len(plots.PNG_NAMES)
    assert {base64.b64decode(i) for i in images} == {p.read_bytes() for p in pngs}
    for model in models_of(smoke_repo):
        assert f"<td>{model}</td>" in page and f"<h3>{model} " in page
    assert "as the corpus grows" in page and "The best configuration is" in page
    assert "Greedy continuations copy runs of" in page


def test_the_report_regenerates_to_the_same_bytes(smoke_clone):
    """No clock, no dates: the same inputs (timing files included) give the same page."""
    before = (smoke_clone / "reports/index.html").read_bytes()
    run(["python", "-m", "stages.report"], smoke_clone)
    assert (smoke_clone / "reports/index.html").read_bytes() == before


def test_dvc_plots_show_and_diff_render_offline(smoke_repo, tmp_path):
    config = configparser.ConfigParser()
    config.read(smoke_repo / ".dvc/config")
    assert config.get("plots", "html_template").strip() == "plots/offline.html"
    for command, out in ((["dvc", "plots", "show"], tmp_path / "show"), (["dvc", "plots", "diff", "HEAD"], tmp_path / "diff")):
        result = run([*command, "-o", str(out)], smoke_repo)
        page = (out / "index.html").read_text(encoding="utf-8")
        assert not EXTERNAL_SCRIPT.search(page), "a <script src> points to the network"
        assert "cdn.jsdelivr.net" not in page and "window.vegaEmbed" in page
        # The five CSV plots and every declared PNG.
        assert page.count("vegaEmbed('#") == 5, result.stdout
        for name in plots.PNG_NAMES:
            assert name.replace(".png", "") in page, name
        specs = re.findall(r"var spec = (\{.*?\});\n", page, re.S)
        assert any('"model"' in spec and '"split"' in spec for spec in specs)


# ------------------------------------------------------------------------------ the pieces
@pytest.mark.slow  # vl-convert bundles Vega afresh: about 5 s
def test_the_committed_offline_template_is_the_generated_one():
    committed = (PROJECT_ROOT / ".dvc/plots/offline.html").read_text(encoding="utf-8")
    assert committed == plots.offline_html_template(), "rerun `picollm plots-template`"
    assert "{plot_divs}" in committed and "{scripts}" not in committed
    assert not EXTERNAL_SCRIPT.search(committed)


def test_samples_markdown_keeps_a_few_per_heading_and_escapes():
    text = "# Samples from `m`\n\nPrompt: `Once`\n\n## greedy\n\n1. Once <b>a</b>\n\n## top-p 0.9\n\n1. a\n2. b\n3. c\n"
    html = report.samples_markdown_to_html(text, per_heading=2)
    assert "&lt;b&gt;a&lt;/b&gt;" in html and "<h4>top-p 0.9</h4>" in html
    assert html.count("class=sample") == 3
