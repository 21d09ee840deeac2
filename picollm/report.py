"""reports/index.html: one self-contained page (no network) with everything the pipeline found.

The model table (metrics/models.json), every PNG under plots/ inlined as a base64 data URI, the
studies' findings in one sentence each (computed from metrics/sweeps/*.json, never hand-written),
the hparam ranking, the memorisation samples of the overfitting study, and a few samples per
model (reports/samples/<model>.md). No timings appear, so the same results give the same page.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from picollm import paths
from picollm.io import read_json

SWEEPS = ("corpus_size", "training_budget", "overfitting", "hparam_grid")
CAPTIONS = {
    "loss_curves.png": "Train and validation loss of every model during training (DVCLive logs).",
    "bpb_vs_params.png": "Validation bits per byte against parameter count; the solid line is the corpus entropy floor.",
    "throughput.png": "Training throughput in tokens per second on the machine that ran the pipeline.",
    "sampling_quality_diversity.png": "Sampling study: quality against diversity for every model and decoding setting.",
    "bench.png": "Speed: every model's training step and decoding against this machine's matmul peak (stage bench).",
    "sweep_corpus_size.png": "Study corpus_size: loss against the number of train documents, at a fixed step budget.",
    "sweep_training_budget.png": "Study training_budget: final loss against steps, and the val loss during training.",
    "sweep_overfitting.png": "Study overfitting: train and held-out loss during long training on a few documents.",
    "sweep_hparam_grid.png": "Study hparam_grid: every configuration ranked by val loss.",
    "sweep_hparam_grid_heatmap.png": "Study hparam_grid: val loss over the two grid axes with the most values.",
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
    pngs = sorted(plots_dir.glob("*.png"), key=lambda p: (list(CAPTIONS).index(p.name) if p.name in CAPTIONS else len(CAPTIONS), p.name))
    return "\n".join(figure(p) for p in pngs) or "<p>No plots yet.</p>"


def _change(a: float, b: float) -> str:
    if abs(b - a) < 0.0005:
        return f"stays at {a:.3f}"
    return f"{'falls' if b < a else 'rises'} from {a:.3f} to {b:.3f}"


def findings(tables: dict[str, dict]) -> dict[str, list[str]]:
    """One sentence per model and study, from the aggregated numbers."""
    out: dict[str, list[str]] = {}
    summary = tables["corpus_size"]["summary"]
    steps = {r["model"]: r["steps"] for r in tables["corpus_size"]["rows"]}
    out["corpus_size"] = [
        f"{model} trained on one corpus size only ({s['docs_largest']:,} documents): val loss {s['val_loss_largest']:.3f}."
        if s["docs_largest"] == s["docs_smallest"] else
        f"{model} val loss {_change(s['val_loss_smallest'], s['val_loss_largest'])} as the corpus grows "
        f"{s['docs_largest'] / s['docs_smallest']:g}x ({s['docs_smallest']:,} to {s['docs_largest']:,} documents) at "
        f"{steps[model]} steps; its train loss {_change(s['train_loss_smallest'], s['train_loss_largest'])}."
        for model, s in summary.items()
    ]
    summary = tables["training_budget"]["summary"]
    out["training_budget"] = [
        f"{model} trained for one budget only ({s['steps_most']} steps): val loss {s['val_loss_most']:.3f}, "
        f"train loss {s['train_loss_most']:.3f}."
        if s["steps_most"] == s["steps_fewest"] else
        f"{model} val loss {_change(s['val_loss_fewest'], s['val_loss_most'])} with {s['steps_most'] / s['steps_fewest']:g}x "
        f"the steps ({s['steps_fewest']} to {s['steps_most']}), its train loss {_change(s['train_loss_fewest'], s['train_loss_most'])}; "
        f"the best budget is {s['best_steps']} steps."
        for model, s in summary.items()
    ]
    summary = tables["overfitting"]["summary"]
    docs = {r["model"]: r["train_docs"] for r in tables["overfitting"]["rows"]}
    sentences = []
    for model, s in summary.items():
        best, last = s["best_test_loss_logged"], s["last_test_loss_logged"]
        if s["best_test_step"] < s["steps"] and last > best + 0.005:
            turn = (f"; the periodic held-out estimate bottomed out at {best:.3f} (step {s['best_test_step']}) "
                    f"and rose to {last:.3f} by step {s['steps']} while the train loss kept falling")
        else:
            turn = f"; the periodic held-out estimate flattens out at {last:.3f} while the train loss keeps falling"
        sentences.append(
            f"{model} after {s['steps']} steps on {docs[model]} documents: train loss {s['train_loss']:.3f} against held-out "
            f"test loss {s['test_loss']:.3f} (gap {s['gap']:+.3f}){turn}. Greedy continuations copy runs of "
            f"{s['overlap_words_train_prompts']:.1f} words (mean longest run) verbatim from the training documents when "
            f"prompted with a training document and {s['overlap_words_test_prompts']:.1f} when prompted with a held-out one, "
            f"against {s['reference_overlap_words']:.1f} for the documents' real text (the corpus's own repetitiveness); "
            f"they repeat the first {s['source_match_words_train_prompts']:.1f} words of their own training document "
            f"({s['source_match_words_test_prompts']:.1f} for held-out ones)."
        )
    out["overfitting"] = sentences
    summary = tables["hparam_grid"]["summary"]
    best = summary["best"]
    grid = [f"The best configuration is {best['config']} (val loss {best['val_loss']:.3f}, {best['val_bpb']:.3f} bpb)."]
    grid += [f"Best {model}: {s['best_config']} ({s['best_val_loss']:.3f}; its worst point {s['worst_val_loss']:.3f})."
             for model, s in summary.items() if model != "best"]
    out["hparam_grid"] = grid
    return out


def studies_section(tables: dict[str, dict]) -> str:
    found = findings(tables)
    titles = {
        "corpus_size": "Corpus size", "training_budget": "Training budget",
        "overfitting": "Overfitting and memorisation", "hparam_grid": "Hyper-parameter grid",
    }
    parts = []
    for sweep in SWEEPS:
        parts.append(f"<h3>{titles[sweep]} <small><code>metrics/sweeps/{sweep}.json</code></small></h3>")
        parts.append("<ul>" + "".join(f"<li>{esc(s)}</li>" for s in found[sweep]) + "</ul>")
        if sweep == "hparam_grid":
            rows = sorted(tables[sweep]["rows"], key=lambda r: (r["val_loss"], r["point"]))
            parts.append(table(
                ["rank", "model", "embed", "block", "layers", "heads", "lr", "batch", "params", "val loss", "val bpb"],
                [[i + 1, r["model"], r["embed"], r["block_size"], r["layers"], r["heads"], f"{r['lr']:g}", r["batch_size"],
                  r["params"], r["val_loss"], r["val_bpb"]] for i, r in enumerate(rows)],
                {0, 2, 3, 4, 5, 6, 7, 8, 9, 10},
            ))
        if sweep == "overfitting":
            parts.append(memorisation_samples(tables[sweep].get("samples", [])))
    return "\n".join(parts)


def memorisation_samples(samples: list[dict]) -> str:
    if not samples:
        return ""
    rows = []
    for s in samples:
        text = (f'<span class="prompt">{esc(s["prompt"])}</span>{esc(s["continuation"])}')
        rows.append(
            f"<tr><td>{esc(s['model'])}</td><td>{esc(s['part'])} #{s['document']}</td><td class=num>{s['source_match_words']}</td>"
            f"<td class=num>{s['longest_overlap_words']}</td><td class=num>{s['reference_overlap_words']}</td>"
            f"<td><div class=sample>{text}</div></td></tr>"
        )
    return ("<p>Greedy continuations (prompt in bold) of the first words of training and held-out documents: "
            "<i>own doc</i> counts the leading words identical to the document's real continuation, <i>overlap</i> "
            "the longest word-for-word run found anywhere in the training documents, <i>real</i> the same for the "
            "document's real text against the other training documents.</p>"
            "<table><tr><th>model</th><th>prompt from</th><th class=num>own doc</th><th class=num>overlap</th>"
            "<th class=num>real</th><th>sample</th></tr>\n" + "\n".join(rows) + "\n</table>")


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
    rows = []
    for model, doc in docs.items():
        final = doc["final"]
        head = final.get("strongest_induction_head")
        rows.append([model, fmt(final["recurring_name_nats_per_token"]), fmt(final["in_context"]["in_context_score"]),
                     f"L{head['layer']} H{head['head']}: {fmt(head['score'])}" if head else "(no heads)"])
    parts = ["<p>Every training snapshot scored on the first validation stories: the loss on recurring names "
             "(what copying lowers), the in-context score (loss late in a story minus early; negative means the "
             "context helps) and, for Transformers, the strongest induction head (0.4 and above: an induction head).</p>",
             table(["model", "recurring name (nats/token)", "in-context score", "strongest induction head"], rows, {1, 2})]
    for model in docs:
        parts += [figure(p) for p in sorted((paths.PLOTS_DIR / "interpret" / model).glob("*.png"))]
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
    return f"<p>{esc(doc['model'])}: {esc(verdict)}</p>\n" + (figure(paths.SPEEDRUN_PLOT) if paths.SPEEDRUN_PLOT.is_file() else "")


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
    tables = {sweep: read_json(paths.METRICS_DIR / "sweeps" / f"{sweep}.json") for sweep in SWEEPS}
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
