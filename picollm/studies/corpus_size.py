"""Study `corpus_size`: the first N documents of the train split, for each N, at one fixed token budget.

The points train on the prefix of the train token cache that ends with the N-th document
(`TrainJob.train_token_limit`), so nothing is re-tokenized. The budget is chosen so that the small
corpora are seen for many epochs and overfit while the large ones are seen less than once: the
held-out loss falls with N and the train/held-out gap closes. The law L(N) = E + A·N^-α is fitted
to the held-out loss against the corpus's tokens; E is the loss this budget reaches with unlimited
text, and the law fitted without the largest corpus is checked against it.
"""

from __future__ import annotations

from typing import Any

from picollm.studies.base import (
    ReportTable,
    ScalingStudy,
    change,
    law_curve,
    law_figure,
    law_words,
    noise_table,
    noise_words,
)


class CorpusSize(ScalingStudy):
    name = "corpus_size"
    title = "Corpus size"
    figures = {"sweep_corpus_size.png": "Study corpus_size: train and held-out loss against the corpus's tokens at a fixed "
                                        "token budget, the fitted law through the held-out points and the seed spread."}
    csv_fields = ("model", "split", "docs", "loss")
    law_field = "corpus_tokens"

    def row(self, doc: dict, axes: list[str]) -> dict:
        return {**super().row(doc, axes), "corpus_tokens": doc["corpus_tokens"]}

    def ends(self, small: dict, large: dict) -> dict[str, Any]:
        return {
            "docs_smallest": small["docs"], "docs_largest": large["docs"], "train_tokens": small["train_tokens"],
            "val_loss_smallest": small["val_loss"], "val_loss_largest": large["val_loss"],
            "gap_smallest": round(small["val_loss"] - small["train_loss"], 6),
            "gap_largest": round(large["val_loss"] - large["train_loss"], 6),
        }

    def model_findings(self, model: str, s: dict, noise: dict) -> list[str]:
        if s["docs_largest"] == s["docs_smallest"]:
            return [f"{model} trained on one corpus size only ({s['docs_largest']:,} documents): val loss {s['val_loss_largest']:.3f}."]
        growth = s["docs_largest"] / s["docs_smallest"]
        out = [
            f"{model} at a fixed {s['train_tokens']:,} training tokens: held-out loss {change(s['val_loss_smallest'], s['val_loss_largest'])} "
            f"({-s['effect']:+.3f}) as the corpus grows {growth:g}x ({s['docs_smallest']:,} to {s['docs_largest']:,} documents), "
            f"{noise_words(s, noise)}; the train/held-out gap goes from {s['gap_smallest']:.3f} to {s['gap_largest']:.3f}."
        ]
        law = s["law"]
        if law["converged"]:
            out.append(f"Fitted over corpus tokens N: {law_words(law, 'N')}; with unlimited text this budget would level "
                       f"off at a held-out loss of {law['E']:.3f} ± {law['E_se']:.3f}.")
        else:
            out.append(f"{model}: {law_words(law, 'N')}.")
        check = s["holdout"]
        if check and check["checked"]:
            within = abs(check["loss_error"]) <= noise["spread"]
            out.append(
                f"Check: fitted without the largest corpus ({check['x']:,} tokens), the law predicts its held-out loss as "
                f"{check['predicted_loss']:.3f}; it measured {check['loss']:.3f} (off by {check['loss_error']:+.3f}, "
                f"{'inside' if within else 'outside'} the seed spread {noise['spread']:.3f})."
            )
        return out

    def plot(self, table: dict, canvas) -> dict[str, Any]:
        def curves(s: dict, x: list[float]) -> list:
            return [law_curve(s["law"], x[0], x[-1], "-", "fit")] if s["law"]["converged"] else []

        return {"sweep_corpus_size.png": law_figure(canvas, table, "corpus_tokens", curves,
                                                    "corpus_size: loss against corpus size at a fixed token budget",
                                                    "corpus size (train tokens, log scale)")}

    def report_tables(self, table: dict) -> list[ReportTable]:
        rows = sorted(table["rows"], key=lambda r: (r["model"], r["docs"]))
        return [ReportTable(
            lead="Every point: the corpus, the epochs the budget makes of it, and the losses.",
            headers=["model", "documents", "corpus tokens", "epochs", "train loss", "val loss", "gap", "val bpb"],
            rows=[[r["model"], r["docs"], r["corpus_tokens"], round(r["train_tokens"] / r["corpus_tokens"], 2), r["train_loss"],
                   r["val_loss"], round(r["val_loss"] - r["train_loss"], 3), r["val_bpb"]] for r in rows],
            numeric=frozenset({1, 2, 3, 4, 5, 6, 7}),
        ), noise_table(table)]


STUDY = CorpusSize()
