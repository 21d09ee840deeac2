"""The model comparison table: metrics/models.json, and the same table as Markdown.

The Markdown goes to reports/models.md; the README's results table is a copy of its first table,
which tests/test_docs.py keeps identical.
"""

from __future__ import annotations


def comparison_rows(models: dict[str, dict], evals: dict[str, dict], train_logs: dict[str, dict]) -> list[dict]:
    rows = []
    for name, spec in models.items():
        ev, log = evals[name], train_logs[name]
        rows.append({
            "model": name,
            "family": spec["family"],
            "variant": spec.get("preset") or spec.get("variant") or spec["family"],
            "params": ev["params"],
            "train_tokens": log["tokens_seen"],
            "val_loss": ev["val_loss"],
            "val_bpb": ev["val_bpb"],
            "floor_gap_bpb": ev.get("floor_gap_bpb"),
            "floor_gap_pct": ev.get("floor_gap_pct"),
            "val_nats_per_doc": ev.get("val_nats_per_doc"),
            "val_nats_per_doc_by_class": {kind: cell["nats_per_doc"] for kind, cell in ev.get("val_loss_by_class", {}).items()},
        })
    return sorted(rows, key=lambda row: row["val_bpb"])


def markdown_table(rows: list[dict], floor_bpb: float | None, unigram_bpb: float) -> str:
    lines = [
        "| model | kind | params | train tokens | val loss | val bpb | gap to floor |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        gap = f"{r['floor_gap_bpb']:+.3f} ({r['floor_gap_pct']:.1f}%)" if r["floor_gap_bpb"] is not None else "n/a"
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['params']:,} | {r['train_tokens']:,} | {r['val_loss']:.3f} | {r['val_bpb']:.3f} | {gap} |"
        )
    lines.append(f"| *unigram baseline* | | | | | {unigram_bpb:.3f} | |")
    if floor_bpb is not None:
        lines.append(f"| *entropy floor* | | | | | {floor_bpb:.3f} | 0 |")
    return "\n".join(lines) + "\n"


CLASS_HEADINGS = {
    "name_first": "name, first mention",
    "name_repeat": "name, recurring",
    "word_repeat": "word, recurring",
    "other": "everything else",
    "end": "end of text",
}


def loss_class_table(rows: list[dict], floor_nats_per_doc: float | None, floor_name_nats_per_doc: float | None = None) -> str:
    """Where each model's validation loss goes, in nats per document (picollm/loss_classes.py).

    The floor row splits the generator's entropy only where the split is exact: its name draws
    (each made where the name first appears) against all its other choices (the plot, optional and
    alternative sentences, nouns, verbs, adjectives), which surface mostly in "everything else"."""
    if not rows or not all(r["val_nats_per_doc_by_class"] for r in rows):
        return ""
    lines = [
        "Where the validation loss goes, in nats per document (the floor is the generator's own: its",
        "name draws, and all its other choices under \"everything else\"):",
        "",
        "| model | total | " + " | ".join(CLASS_HEADINGS.values()) + " |",
        "|---|---:|" + "---:|" * len(CLASS_HEADINGS),
    ]
    for r in rows:
        cells = " | ".join(f"{r['val_nats_per_doc_by_class'][kind]:.1f}" for kind in CLASS_HEADINGS)
        lines.append(f"| {r['model']} | {r['val_nats_per_doc']:.1f} | {cells} |")
    if floor_nats_per_doc is not None:
        floor = dict.fromkeys(CLASS_HEADINGS, "")
        if floor_name_nats_per_doc is not None:
            floor["name_first"] = f"{floor_name_nats_per_doc:.1f}"
            floor["other"] = f"{floor_nats_per_doc - floor_name_nats_per_doc:.1f}"
        cells = "".join(f" {cell} |" if cell else " |" for cell in floor.values())
        lines.append(f"| *entropy floor* | {floor_nats_per_doc:.1f} |{cells}")
    return "\n".join(lines) + "\n"
