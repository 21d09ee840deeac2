"""Scaling laws L(x) = E + A·x^(-α) fitted to a study's points, in pure Python (no numpy: the
studies' modules stay cheap to import).

Given α the law is linear in (E, A), so the fit is a one-dimensional search: for each α the least
squares E and A follow in closed form, and α minimises the residual sum of squares (a log-spaced
scan, then golden-section refinement). x is scaled by its smallest value inside the fit so the
three parameters have comparable sizes; the reported A is in the caller's units.

Uncertainties are the usual asymptotic ones: the covariance s²(JᵀJ)⁻¹ at the optimum, with
s² = RSS / (n - 3), so a law needs at least 4 points (one degree of freedom). A fit `converged`
when α lies inside the scanned range, A > 0 (the loss falls with x) and JᵀJ is invertible.
"""

from __future__ import annotations

import math
from typing import Any

PARAMS = 3
MIN_POINTS = PARAMS + 1          # a residual to estimate the noise from
ALPHA_RANGE = (1e-3, 8.0)
SCAN = 400                       # log-spaced α values before the golden-section refinement
DIGITS = 6                       # significant digits kept in the metrics JSON (same params, same bytes)


def sig(value: float | None) -> float | None:
    """`value` rounded to DIGITS significant digits."""
    if value is None or value == 0 or not math.isfinite(value):
        return value
    return round(value, DIGITS - 1 - math.floor(math.log10(abs(value))))


def _linear(z: list[float], y: list[float]) -> tuple[float, float, float]:
    """Least squares of y = E + B·z: (E, B, RSS)."""
    n = len(z)
    mz, my = sum(z) / n, sum(y) / n
    szz = sum((a - mz) ** 2 for a in z)
    if szz <= 0:
        return my, 0.0, sum((b - my) ** 2 for b in y)
    b = sum((a - mz) * (c - my) for a, c in zip(z, y)) / szz
    e = my - b * mz
    return e, b, sum((e + b * a - c) ** 2 for a, c in zip(z, y))


def _rss(alpha: float, u: list[float], y: list[float]) -> float:
    return _linear([v ** -alpha for v in u], y)[2]


def _best_alpha(u: list[float], y: list[float]) -> float:
    low, high = (math.log(a) for a in ALPHA_RANGE)
    grid = [math.exp(low + (high - low) * i / (SCAN - 1)) for i in range(SCAN)]
    scores = [_rss(a, u, y) for a in grid]
    i = min(range(SCAN), key=lambda k: (scores[k], k))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, SCAN - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    for _ in range(100):
        if _rss(c, u, y) < _rss(d, u, y):
            b = d
        else:
            a = c
        c, d = b - ratio * (b - a), a + ratio * (b - a)
    return (a + b) / 2


def _inverse3(m: list[list[float]]) -> list[list[float]] | None:
    (a, b, c), (d, e, f), (g, h, i) = m
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    if not math.isfinite(det) or abs(det) < 1e-300:
        return None
    cof = [[e * i - f * h, c * h - b * i, b * f - c * e],
           [f * g - d * i, a * i - c * g, c * d - a * f],
           [d * h - e * g, b * g - a * h, a * e - b * d]]
    return [[v / det for v in row] for row in cof]


def fit_law(x: list[float], y: list[float]) -> dict[str, Any]:
    """E, A, α with standard errors; `converged` false (with a reason) when the points cannot say."""
    n = len(x)
    if n < MIN_POINTS:
        return {"converged": False, "points": n, "reason": f"a 3-parameter law needs at least {MIN_POINTS} points, the study has {n}"}
    if len(set(x)) < MIN_POINTS or min(x) <= 0:
        return {"converged": False, "points": n, "reason": f"the law needs {MIN_POINTS} distinct positive x values"}
    x0 = min(x)
    u = [v / x0 for v in x]
    alpha = _best_alpha(u, y)
    z = [v ** -alpha for v in u]
    e, b, rss = _linear(z, y)
    # Jacobian of E + B·u^-α with respect to (E, B, α); covariance s²(JᵀJ)⁻¹.
    jac = [(1.0, zi, -b * zi * math.log(ui)) for zi, ui in zip(z, u)]
    jtj = [[sum(r[p] * r[q] for r in jac) for q in range(PARAMS)] for p in range(PARAMS)]
    inverse = _inverse3(jtj)
    at_edge = not (ALPHA_RANGE[0] * 1.01 < alpha < ALPHA_RANGE[1] * 0.99)
    reason = ("α ran to the edge of its range" if at_edge else "the loss does not fall with x" if b <= 0
              else "the parameters are not identifiable from these points" if inverse is None else None)
    s2 = rss / (n - PARAMS)
    cov = [[s2 * v for v in row] for row in inverse] if inverse is not None else None
    scale = x0 ** alpha  # A = B·x0^α: the law in the caller's units
    law: dict[str, Any] = {
        "converged": reason is None, "points": n, "x0": x0,
        "E": sig(e), "A": sig(b * scale), "alpha": sig(alpha), "B": sig(b), "rss": sig(rss),
        "rmse": sig(math.sqrt(rss / n)),
    }
    if cov is not None:
        grad_a = (scale, b * scale * math.log(x0))  # dA/dB, dA/dα
        var_a = grad_a[0] ** 2 * cov[1][1] + grad_a[1] ** 2 * cov[2][2] + 2 * grad_a[0] * grad_a[1] * cov[1][2]
        law.update(E_se=sig(math.sqrt(max(cov[0][0], 0.0))), A_se=sig(math.sqrt(max(var_a, 0.0))),
                   alpha_se=sig(math.sqrt(max(cov[2][2], 0.0))),
                   cov=[[sig(v) for v in row] for row in cov])
    if reason:
        law["reason"] = reason
    return law


def predict(law: dict[str, Any], x: float) -> float:
    return law["E"] + law["B"] * (x / law["x0"]) ** -law["alpha"]


def x_for_loss(law: dict[str, Any], loss: float) -> dict[str, Any]:
    """The x at which the law reaches `loss`, with a one-standard-error range from the covariance;
    `reachable` false when the loss is at or below the fitted floor E."""
    e, b, alpha, x0 = law["E"], law["B"], law["alpha"], law["x0"]
    if loss <= e:
        return {"loss": loss, "reachable": False}
    log_ratio = math.log(b) - math.log(loss - e)
    value = x0 * math.exp(log_ratio / alpha)
    out: dict[str, Any] = {"loss": loss, "reachable": True, "x": sig(value)}
    if "cov" in law:
        grad = (1 / (alpha * (loss - e)), 1 / (alpha * b), -log_ratio / alpha ** 2)  # d ln x / d(E, B, α)
        var = sum(grad[p] * grad[q] * law["cov"][p][q] for p in range(PARAMS) for q in range(PARAMS))
        spread = math.exp(math.sqrt(max(var, 0.0)))
        out.update(low=sig(value / spread), high=sig(value * spread))
    return out


def holdout_check(x: list[float], y: list[float]) -> dict[str, Any]:
    """The law fitted without the point of largest x, against that point: the loss it predicts there
    and the x it says that point's measured loss takes, next to the measured ones."""
    order = sorted(range(len(x)), key=lambda i: x[i])
    last = order[-1]
    law = fit_law([x[i] for i in order[:-1]], [y[i] for i in order[:-1]])
    out: dict[str, Any] = {"x": x[last], "loss": y[last], "law": law}
    if not law["converged"]:
        return {**out, "checked": False}
    needed = x_for_loss(law, y[last])
    out.update(checked=True, predicted_loss=sig(predict(law, x[last])), predicted_x=needed.get("x"))
    out["loss_error"] = sig(out["predicted_loss"] - y[last])
    out["x_error"] = sig(needed["x"] / x[last] - 1) if needed["reachable"] else None
    return out
