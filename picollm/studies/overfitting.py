"""Study `overfitting`: long training on a few train documents, a share of them held out as test.

`python -m stages.sweep overfitting-data` splits the first `documents` train documents and writes
their small token caches (plan.study_data_dir); the points train on the train part with the test
part as the loop's "val", so the history holds both curves and shows the held-out loss turning up
while the train loss keeps falling. Greedy samples from the first words of train and test
documents show memorisation (picollm/studies/memorisation.py).
"""

from __future__ import annotations

from typing import Any

from picollm.studies.base import ROUND, ReportTable, Study, against_noise, noise_table, noise_words


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 3) if values else 0.0


class Overfitting(Study):
    name = "overfitting"
    title = "Overfitting and memorisation"
    figures = {"sweep_overfitting.png": "Study overfitting: train and held-out loss during long training on a few documents; "
                                        "the star marks the held-out minimum."}
    csv_fields = ("model", "split", "step", "loss")
    noise_field = "test_loss"

    def extras(self, docs: list[dict]) -> dict[str, Any]:
        curves = [{"model": doc["model"], "point": doc["point"], "steps": doc["steps"], "step": h["step"],
                   "split": "train" if "train_loss" in h else "test", "loss": h.get("train_loss", h.get("val_loss"))}
                  for doc in docs for h in doc["history"]]
        samples = [{"model": doc["model"], **s} for doc in docs for s in doc.get("samples", [])]
        return {"curves": curves, "samples": samples}

    def summarize(self, table: dict, section) -> dict[str, Any]:
        summary: dict[str, Any] = {}
        for row in table["rows"]:
            model = row["model"]
            test = [(c["step"], c["loss"]) for c in table["curves"] if c["model"] == model and c["split"] == "test"]
            best_step, best = min(test, key=lambda item: (item[1], item[0])) if test else (row["steps"], row["test_loss"])
            last = test[-1][1] if test else row["test_loss"]
            samples = [s for s in table["samples"] if s["model"] == model]

            def mean(part: str, field: str, samples: list[dict] = samples) -> float:
                return _mean([s[field] for s in samples if s["part"] == part])

            gap = row["test_loss"] - row["train_loss"]
            summary[model] = {
                "train_docs": row["train_docs"], "steps": row["steps"],
                "train_loss": row["train_loss"], "test_loss": row["test_loss"], "gap": round(gap, ROUND),
                "best_test_loss_logged": best, "best_test_step": best_step, "last_test_loss_logged": last,
                "gap_vs_noise": against_noise(gap, table["noise"]),
                **against_noise(last - best, table["noise"]),
                "overlap_words_train_prompts": mean("train", "longest_overlap_words"),
                "overlap_words_test_prompts": mean("test", "longest_overlap_words"),
                "source_match_words_train_prompts": mean("train", "source_match_words"),
                "source_match_words_test_prompts": mean("test", "source_match_words"),
                "reference_overlap_words": _mean([s["reference_overlap_words"] for s in samples]),
            }
        return summary

    def findings(self, table: dict) -> list[str]:
        out = []
        noise = table["noise"]
        for model, s in table["summary"].items():
            out.append(
                f"{model} after {s['steps']} steps on {s['train_docs']} documents: train loss {s['train_loss']:.3f} against "
                f"held-out loss {s['test_loss']:.3f}, a gap of {s['gap']:+.3f}, {noise_words(s['gap_vs_noise'], noise)}."
            )
            if s["best_test_step"] < s["steps"]:
                out.append(
                    f"The periodic held-out estimate bottoms out at {s['best_test_loss_logged']:.3f} at step {s['best_test_step']} "
                    f"and rises by {s['effect']:.3f} to {s['last_test_loss_logged']:.3f} by step {s['steps']} while the train "
                    f"loss keeps falling: {noise_words(s, noise)}."
                )
            else:
                out.append(f"The periodic held-out estimate is still at its lowest ({s['last_test_loss_logged']:.3f}) at the last "
                           f"step: no turn measured within {s['steps']} steps.")
            out.append(
                f"Greedy continuations copy runs of {s['overlap_words_train_prompts']:.1f} words (mean longest run) verbatim "
                f"from the training documents when prompted with a training document and {s['overlap_words_test_prompts']:.1f} "
                f"when prompted with a held-out one, against {s['reference_overlap_words']:.1f} for the documents' real text "
                f"(the corpus's own repetitiveness); they repeat the first {s['source_match_words_train_prompts']:.1f} words of "
                f"their own training document ({s['source_match_words_test_prompts']:.1f} for held-out ones)."
            )
        return out

    def csv_rows(self, table: dict) -> list[dict]:
        return [{"model": c["model"], "split": c["split"], "step": c["step"], "loss": c["loss"]} for c in table.get("curves", [])]

    def plot(self, table: dict, canvas) -> dict[str, Any]:
        plt = canvas.plt
        fig, ax = plt.subplots(figsize=(8, 4.8))
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for index, model in enumerate(table["summary"]):
            colour = colours[index % len(colours)]
            for split, style in (("train", "--"), ("test", "-")):
                curve = [(c["step"], c["loss"]) for c in table["curves"] if c["model"] == model and c["split"] == split]
                ax.plot([c[0] for c in curve], [c[1] for c in curve], style, color=colour,
                        label=f"{model} {'held-out' if split == 'test' else 'train'}")
            s = table["summary"][model]
            ax.plot([s["best_test_step"]], [s["best_test_loss_logged"]], "*", color=colour, markersize=14,
                    label=f"held-out minimum {s['best_test_loss_logged']:.2f} (step {s['best_test_step']})")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats/token)")
        ax.set_title("overfitting: loss on the trained documents against the held-out ones")
        ax.legend(fontsize=8)
        return {"sweep_overfitting.png": fig}

    def report_tables(self, table: dict) -> list[ReportTable]:
        samples = table.get("samples", [])
        memorised = ReportTable(
            lead=("Greedy continuations of the first words of training and held-out documents: own doc counts the leading "
                  "words identical to the document's real continuation, overlap the longest word-for-word run found anywhere "
                  "in the training documents, real the same for the document's real text against the other training documents."),
            headers=["model", "prompt from", "own doc", "overlap", "real", "prompt", "continuation"],
            rows=[[s["model"], f"{s['part']} #{s['document']}", s["source_match_words"], s["longest_overlap_words"],
                   s["reference_overlap_words"], s["prompt"], s["continuation"]] for s in samples],
            numeric=frozenset({2, 3, 4}),
        )
        return ([memorised] if samples else []) + [noise_table(table)]


STUDY = Overfitting()
