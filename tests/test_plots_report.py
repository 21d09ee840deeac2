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
    """No timings, no dates: the same inputs give the same page."""
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


def test_findings_are_computed_from_the_numbers():
    def row(model, **values):
        return {"model": model, "point": f"{model}-x", **values}

    tables = {
        "corpus_size": {"rows": [row("gptoss", steps=60)], "summary": {"gptoss": {
            "docs_smallest": 50, "docs_largest": 400, "val_loss_smallest": 4.5, "val_loss_largest": 4.0,
            "train_loss_smallest": 3.0, "train_loss_largest": 3.9}}},
        "training_budget": {"rows": [], "summary": {"lstm": {
            "steps_fewest": 10, "steps_most": 60, "val_loss_fewest": 6.0, "val_loss_most": 5.0, "train_loss_fewest": 6.1,
            "train_loss_most": 4.9, "best_steps": 60}}},
        "overfitting": {"rows": [row("gptoss", train_docs=18)], "summary": {"gptoss": {
            "steps": 100, "train_loss": 0.5, "test_loss": 5.0, "gap": 4.5, "best_test_loss_logged": 4.4, "best_test_step": 40,
            "last_test_loss_logged": 4.9, "overlap_words_train_prompts": 20.0, "overlap_words_test_prompts": 8.0,
            "source_match_words_train_prompts": 15.0, "source_match_words_test_prompts": 2.0, "reference_overlap_words": 5.0}}},
        "hparam_grid": {"rows": [], "summary": {"best": {"config": "gptoss e64", "val_loss": 4.2, "val_bpb": 1.5},
                                                "gptoss": {"best_config": "gptoss e64", "best_val_loss": 4.2, "worst_val_loss": 5.0}}},
    }
    found = report.findings(tables)
    assert found["corpus_size"] == ["gptoss val loss falls from 4.500 to 4.000 as the corpus grows 8x (50 to 400 documents) "
                                    "at 60 steps; its train loss rises from 3.000 to 3.900."]
    assert "lstm val loss falls from 6.000 to 5.000 with 6x the steps (10 to 60)" in found["training_budget"][0]
    assert "bottomed out at 4.400 (step 40) and rose to 4.900" in found["overfitting"][0]
    assert "copy runs of 20.0 words" in found["overfitting"][0] and "against 5.0 for the documents' real text" in found["overfitting"][0]
    assert found["hparam_grid"][0] == "The best configuration is gptoss e64 (val loss 4.200, 1.500 bpb)."


def test_samples_markdown_keeps_a_few_per_heading_and_escapes():
    text = "# Samples from `m`\n\nPrompt: `Once`\n\n## greedy\n\n1. Once <b>a</b>\n\n## top-p 0.9\n\n1. a\n2. b\n3. c\n"
    html = report.samples_markdown_to_html(text, per_heading=2)
    assert "&lt;b&gt;a&lt;/b&gt;" in html and "<h4>top-p 0.9</h4>" in html
    assert html.count("class=sample") == 3
