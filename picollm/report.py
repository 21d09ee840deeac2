"""reports/index.html: one self-contained page (no network) with everything the pipeline found.

The model table (metrics/models.json), every PNG under plots/ inlined as a base64 data URI, each
study's findings (computed by picollm/studies/<study>.py from metrics/sweeps/<study>.json, never
hand-written, each effect next to its seed spread) and tables, and a few samples per model
(reports/samples/<model>.md). Timings appear only as the throughput figure and the speedrun's
seconds, both read from metrics/timings/ files the stage declares, so the same files give the same
page.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from picollm import paths
from picollm.io import read_json
from picollm.studies.plan import sweep_metrics
from picollm.studies.registry import ordered as studies

CAPTIONS = {
    "loss_curves.png": "Train and validation loss of every model during training (DVCLive logs).",
    "bpb_vs_params.png": "Validation bits per byte against parameter count; the solid line is the corpus entropy floor.",
    "throughput.png": "Training throughput in tokens per second on the machine that ran the pipeline.",
    "sampling_quality_diversity.png": "Sampling study: quality against diversity for every model and decoding setting.",
    "bench.png": "Speed: every model's training step and decoding against this machine's matmul peak (stage bench).",
    **{name: caption for study in studies() for name, caption in study.figures.items()},
}
STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1, h2, h3 { color: #123; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: .92em; }
.sample { font-family: Georgia, serif; background: #f7f7f4; padding: .4em .8em; margin: .3em 0; border-left: 3px solid #bbb; }
.prompt { font-weight: bold; } code { background: #f0f0f0; padding: 0 .2em; }
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def fmt(value, digits: int = 3) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "n/a" if value is None else str(value)


def table(headers: list[str], rows: list[list], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f'<th{" class=num" if i in numeric else ""}>{esc(h)}</th>' for i, h in enumerate(headers))
    body = "\n".join(
        "<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{esc(fmt(v))}</td>' for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table>\n<tr>{head}</tr>\n{body}\n</table>"


# ------------------------------------------------------------------------------ sections
def models_section(models_doc: dict) -> str:
    rows = [[r["model"], r["variant"], r["params"], r["train_tokens"], r["val_loss"], r["val_bpb"], r.get("floor_gap_bpb")]
            for r in models_doc.get("models", [])]
    out = table(["model", "kind", "params", "train tokens", "val loss", "val bpb", "gap to floor (bpb)"], rows, {2, 3, 4, 5, 6})
    notes = []
    if models_doc.get("unigram_val_bpb") is not None:
        notes.append(f"unigram baseline {models_doc['unigram_val_bpb']:.3f} bpb")
    if models_doc.get("entropy_floor_bpb") is not None:
        notes.append(f"entropy floor {models_doc['entropy_floor_bpb']:.3f} bpb")
    best = models_doc["models"][0]["model"] if models_doc.get("models") else None
    lead = f"<p>Sorted by validation bits per byte; the best model is <b>{esc(best)}</b>.</p>" if best else ""
    return lead + out + (f"<p>{esc('; '.join(notes))}.</p>" if notes else "")


def figure(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    caption = CAPTIONS.get(path.name, path.stem.replace("_", " "))
    return (f'<figure id="{esc(path.stem)}"><img alt="{esc(path.stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)} <code>{esc(path.as_posix())}</code></figcaption></figure>")


def plots_section(plots_dir: Path) -> str:
    shown_elsewhere = {paths.SPEEDRUN_PLOT.name, paths.OVER_TRAINING_PLOT.name}  # in their own sections
    pngs = sorted((p for p in plots_dir.glob("*.png") if p.name not in shown_elsewhere), key=lambda p: (list(CAPTIONS).index(p.name) if p.name in CAPTIONS else len(CAPTIONS), p.name))
    return "\n".join(figure(p) for p in pngs) or "<p>No plots yet.</p>"


def findings(tables: dict[str, dict]) -> dict[str, list[str]]:
    """Each study's sentences, from its aggregated numbers."""
    return {study.name: study.findings(tables[study.name]) for study in studies()}


def studies_section(tables: dict[str, dict]) -> str:
    found = findings(tables)
    parts = []
    for study in studies():
        parts.append(f"<h3>{esc(study.title)} <small><code>{esc(sweep_metrics(study.name).as_posix())}</code></small></h3>")
        parts.append("<ul>" + "".join(f"<li>{esc(s)}</li>" for s in found[study.name]) + "</ul>")
        for extra in study.report_tables(tables[study.name]):
            parts.append(f"<p>{esc(extra.lead)}</p>" + table(extra.headers, extra.rows, set(extra.numeric)))
    return "\n".join(parts)


def samples_markdown_to_html(text: str, per_heading: int = 2) -> str:
    """The evaluate stage's samples file (headings and numbered samples) as HTML, a few per heading."""
    parts, shown = [], 0
    for line in text.splitlines():
        if line.startswith("# "):
            continue
        if line.startswith("## "):
            parts.append(f"<h4>{esc(line[3:])}</h4>")
            shown = 0
        elif re.match(r"^\d+\. ", line):
            if shown < per_heading:
                parts.append(f"<div class=sample>{esc(line.split('. ', 1)[1])}</div>")
            shown += 1
        elif line.strip():
            parts.append(f"<p>{esc(line).replace('`', '')}</p>")
    return "\n".join(parts)


def interpret_section(models: list[str]) -> str:
    """interpret@<model>: the end of training in one table, then each model's figures."""
    docs = {m: read_json(paths.interpret_metrics(m)) for m in models if paths.interpret_metrics(m).is_file()}
    if not docs:
        return "<p>No interpretability results yet.</p>"

    def strongest(final: dict, key: str) -> str:
        head = final.get(f"strongest_{key}_head")
        return f"L{head['layer']} H{head['head']}: {fmt(head['score'])}" if head else "(no heads)"

    rows = [[model, fmt(doc["final"]["recurring_name_nats_per_token"]), fmt(doc["final"]["in_context"]["in_context_score"]),
             *(strongest(doc["final"], key) for key in ("name_copy", "induction", "text_induction"))]
            for model, doc in docs.items()]
    parts = ["<p>Every training snapshot scored on the first validation stories: the loss on recurring names "
             "(what copying lowers), the in-context score (loss late in a story minus early; negative means the "
             "context helps) and, for Transformers, the strongest head by each attention score (0.4 and above: "
             "a copying or induction head). Name copy: the attention paid, before a recurring name, to that "
             "name's earlier mentions.</p>",
             table(["model", "recurring name (nats/token)", "in-context score", "strongest name-copy head (stories)",
                    "strongest induction head (random tokens)", "strongest induction head (stories)"], rows, {1, 2})]
    if paths.OVER_TRAINING_PLOT.is_file():
        parts.append(figure(paths.OVER_TRAINING_PLOT))
    for model in docs:
        parts += [figure(p) for p in sorted((paths.INTERPRET_PLOTS_DIR / model).glob("*.png"))]
    return "\n".join(parts)


def speedrun_section() -> str:
    """The default recipe against nanoGPT's: tokens to the target, in one sentence and a figure."""
    if not paths.SPEEDRUN_METRICS.is_file():
        return "<p>No speedrun yet.</p>"
    doc = read_json(paths.SPEEDRUN_METRICS)
    recipe, nanogpt = doc["recipe"]["tokens_to_target"], doc["nanogpt"]["tokens_to_target"]
    budget = max(row["tokens"] for row in doc["nanogpt"]["curve"])
    target = f"{doc['target_bpb']:.3f} bpb ({doc['target_floor_ratio']:g} x the entropy floor)"
    if recipe and nanogpt:
        verdict = (f"The default recipe reached {target} after {recipe:,} tokens, nanoGPT's after {nanogpt:,}: "
                   f"{doc['token_ratio']:.2f} of the tokens.")
    elif recipe:
        verdict = (f"The default recipe reached {target} after {recipe:,} tokens; nanoGPT's did not within {budget:,} "
                   f"(best {doc['nanogpt']['best_val_bpb']:.3f}), so it needs at most {doc['token_ratio']:.2f} of nanoGPT's tokens.")
    else:
        verdict = f"Neither recipe reached {target} within {budget:,} tokens."
    match = doc.get("match_nanogpt_final") or {}
    if match.get("token_ratio") is not None:
        verdict += (f" The default recipe matched nanoGPT's final {match['nanogpt_final_val_bpb']:.3f} bpb "
                    f"({match['nanogpt_final_tokens']:,} tokens) after about {match['recipe_tokens']:,}: "
                    f"{match['token_ratio']:.2f} of the tokens.")
    if paths.SPEEDRUN_TIMINGS.is_file():
        verdict += " " + speedrun_seconds(doc, read_json(paths.SPEEDRUN_TIMINGS))
    return f"<p>{esc(doc['model'])}: {esc(verdict)}</p>\n" + (figure(paths.SPEEDRUN_PLOT) if paths.SPEEDRUN_PLOT.is_file() else "")


def speedrun_seconds(doc: dict, timings: dict) -> str:
    """The speedrun in seconds on the machine that ran it: each recipe's tokens at its own training
    speed, the two speeds timed side by side (stage `speedrun`)."""
    recipe_rate, nanogpt_rate = timings["recipe"]["tokens_per_second"], timings["nanogpt"]["tokens_per_second"]
    text = (f"In seconds on the machine that ran it, the default recipe trains at {recipe_rate:,.0f} tokens/s and "
            f"nanoGPT's at {nanogpt_rate:,.0f} (timed side by side)")
    recipe, nanogpt = doc["recipe"]["tokens_to_target"], doc["nanogpt"]["tokens_to_target"]
    if recipe:
        text += f": the default recipe reached the target after {recipe / recipe_rate:,.0f} s"
        budget = max(row["tokens"] for row in doc["nanogpt"]["curve"])
        text += (f", nanoGPT's after {nanogpt / nanogpt_rate:,.0f} s" if nanogpt
                 else f", nanoGPT's not within its {budget / nanogpt_rate:,.0f} s")
    match = doc.get("match_nanogpt_final") or {}
    if match.get("recipe_tokens") is not None:
        text += (f"; it matched nanoGPT's final loss after {match['recipe_tokens'] / recipe_rate:,.0f} s against "
                 f"{match['nanogpt_final_tokens'] / nanogpt_rate:,.0f} s")
    return text + "."


def samples_section(models: list[str]) -> str:
    parts = []
    for model in models:
        path = paths.samples_file(model)
        if path.is_file():
            parts.append(f"<h3>{esc(model)} <small><code>{esc(path.as_posix())}</code></small></h3>")
            parts.append(samples_markdown_to_html(path.read_text(encoding="utf-8")))
    return "\n".join(parts) or "<p>No samples yet.</p>"


def build_report(models: list[str]) -> str:
    models_doc = read_json(paths.METRICS_DIR / "models.json")
    tables = {study.name: read_json(sweep_metrics(study.name)) for study in studies()}
    sections = [
        ("models", "Models", models_section(models_doc)),
        ("inside", "Inside the models", interpret_section(models)),
        ("speedrun", "Speedrun", speedrun_section()),
        ("studies", "Studies", studies_section(tables)),
        ("plots", "Plots", plots_section(paths.PLOTS_DIR)),
        ("samples", "Samples", samples_section(models)),
    ]
    toc = " · ".join(f'<a href="#{key}">{title}</a>' for key, title, _ in sections)
    body = "\n".join(f'<h2 id="{key}">{title}</h2>\n{content}' for key, title, content in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>pico-llm report</title>\n"
        f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>pico-llm report</h1>\n"
        "<p>Written by the <code>report</code> stage from the pipeline's metrics; regenerate with <code>dvc repro</code>. "
        f"Self-contained: it needs no network.</p>\n<p>{toc}</p>\n{body}\n</body>\n</html>\n"
    )
