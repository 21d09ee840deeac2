"""Study `training_budget`: one model and corpus trained for base_steps x each multiplier.

Each budget is a complete run with its own warm-up and cosine decay, so a point's loss is what that
budget buys, not a mid-run snapshot. The law L(D) = E + A·D^-α is fitted to the held-out loss
against training tokens D; it extrapolates the tokens a target loss (`target_loss`) takes, and the
law fitted without the largest budget predicts the tokens that budget needed for its measured loss:
the check of the extrapolation against a real run.
"""

from __future__ import annotations

from typing import Any

from picollm.studies import fit
from picollm.studies.base import (
    ScalingStudy,
    change,
    law_curve,
    law_figure,
    law_words,
    noise_words,
)


class TrainingBudget(ScalingStudy):
    name = "training_budget"
    title = "Training budget"
    figures = {"sweep_training_budget.png": "Study training_budget: final loss of each budget against its training tokens, "
                                            "the fitted law (solid), the law fitted without the largest budget (dashed), "
                                            "the extrapolation to the target loss and the seed spread."}
    csv_fields = ("model", "split", "steps", "loss")
    law_field = "train_tokens"

    def ends(self, short: dict, long: dict) -> dict[str, Any]:
        return {
            "tokens_fewest": short["train_tokens"], "tokens_most": long["train_tokens"],
            "steps_fewest": short["steps"], "steps_most": long["steps"],
            "val_loss_fewest": short["val_loss"], "val_loss_most": long["val_loss"],
            "train_loss_fewest": short["train_loss"], "train_loss_most": long["train_loss"],
        }

    def extrapolate(self, law: dict, section) -> dict[str, Any]:
        return {"target": fit.x_for_loss(law, section.target_loss) if law["converged"] and section.target_loss else None}

    def model_findings(self, model: str, s: dict, noise: dict) -> list[str]:
        if s["tokens_most"] == s["tokens_fewest"]:
            return [f"{model} trained for one budget only ({s['tokens_most']:,} tokens): val loss {s['val_loss_most']:.3f}."]
        out = [
            f"{model}: held-out loss {change(s['val_loss_fewest'], s['val_loss_most'])} ({-s['effect']:+.3f}) with "
            f"{s['tokens_most'] / s['tokens_fewest']:g}x the training tokens ({s['tokens_fewest']:,} to {s['tokens_most']:,}), "
            f"{noise_words(s, noise)}; its train loss {change(s['train_loss_fewest'], s['train_loss_most'])}."
        ]
        law = s["law"]
        out.append(f"Fitted over training tokens D: {law_words(law, 'D')}." if law["converged"] else f"{model}: {law_words(law, 'D')}.")
        target = s["target"]
        if target and target["reachable"]:
            span = f" (one-standard-error range {target['low']:,.0f} to {target['high']:,.0f})" if "low" in target else ""
            out.append(f"Extrapolated: a held-out loss of {target['loss']:g} takes {target['x']:,.0f} training tokens{span}, "
                       f"{target['x'] / s['tokens_most']:.1f}x the largest budget.")
        elif target:
            out.append(f"Extrapolated: a held-out loss of {target['loss']:g} is out of reach, below the fitted floor E = {law['E']:.3f}.")
        check = s["holdout"]
        if check and check["checked"] and check["x_error"] is not None:
            out.append(
                f"Check: fitted without the largest budget, the law says a held-out loss of {check['loss']:.3f} takes "
                f"{check['predicted_x']:,.0f} tokens; the real run took {check['x']:,} ({check['x_error']:+.0%})."
            )
        elif check and check["checked"]:
            out.append(f"Check: fitted without the largest budget, the law never reaches its loss {check['loss']:.3f} "
                       f"(its floor E = {check['law']['E']:.3f}); it predicts {check['predicted_loss']:.3f} there.")
        return out

    def plot(self, table: dict, canvas) -> dict[str, Any]:
        def curves(s: dict, x: list[float]) -> list:
            out, target, end = [], s["target"], x[-1]
            if target and target["reachable"]:
                end = max(end, target["x"])
                out.append(([target["x"]], [target["loss"]], "*", f"extrapolated: {target['x']:,.0f} tokens to {target['loss']:g}"))
            for law, style, label in ((s["law"], "-", "fit"), ((s["holdout"] or {}).get("law"), "--", "fit without the largest")):
                if law and law["converged"]:
                    out.append(law_curve(law, x[0], end, style, label))
            return out

        return {"sweep_training_budget.png": law_figure(canvas, table, "train_tokens", curves,
                                                        "training_budget: loss against training tokens", "training tokens (log scale)")}


STUDY = TrainingBudget()
