"""Over-optimization (Gao, Schulman & Hilton 2022): gold reward against d = sqrt(KL), and its fitted forms.

As a policy is pushed against a proxy reward model, the proxy keeps rising while the gold reward rises,
peaks and falls. Gao et al. found, with R(d) = gold(d) − gold(0):

    best-of-n:  R(d) = d (α − β d)          (Gao et al. 2022, eq. 1)
    RL:         R(d) = d (α − β log d)      (Gao et al. 2022, eq. 2)

Both are linear in (α, β), so a least-squares fit without intercept recovers them exactly from clean
curves. The peak of the fitted curve says how much optimization the proxy can bear.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from superalign.records import OptimizationPoint


@dataclass(frozen=True)
class Fit:
    """A fitted over-optimization curve R(d) = d (α − β f(d)), its R², and where it peaks (None: no peak)."""

    form: str  # "best_of_n": f(d) = d; "rl": f(d) = log d
    alpha: float
    beta: float
    r2: float
    d_peak: float | None

    def predict(self, d) -> np.ndarray:
        """The fitted gold gain at d (array-like)."""
        d = np.asarray(d, dtype=float)
        return d * self.alpha - self.beta * d * _f(self.form, d)


def _f(form: str, d: np.ndarray) -> np.ndarray:
    if form == "best_of_n":
        return d
    if form == "rl":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(d > 0, np.log(np.where(d > 0, d, 1.0)), 0.0)  # d log d -> 0 as d -> 0
    raise ValueError(f"form must be best_of_n or rl, not {form!r}")


def _fit(form: str, d, gold_gain) -> Fit:
    d, y = np.asarray(d, dtype=float).reshape(-1), np.asarray(gold_gain, dtype=float).reshape(-1)
    if d.shape != y.shape:
        raise ValueError(f"d and gold_gain differ in length: {d.size} vs {y.size}")
    if not (np.all(np.isfinite(d)) and np.all(np.isfinite(y))):
        raise ValueError("d and gold_gain must be finite")
    if np.any(d < 0):
        raise ValueError("d = sqrt(KL) cannot be negative")
    if np.count_nonzero(d > 0) < 2:
        raise ValueError(f"fitting α and β needs at least two points with d > 0, got {np.count_nonzero(d > 0)}")
    # R = α·d − β·d·f(d): design matrix [d, −d·f(d)], no intercept (R(0) = 0 by definition).
    X = np.stack([d, -d * _f(form, d)], axis=1)  # [points, 2]
    (alpha, beta), *_ = np.linalg.lstsq(X, y, rcond=None)
    residual = float(np.sum((y - X @ np.array([alpha, beta])) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - residual / total if total > 0 else (1.0 if residual < 1e-20 else math.nan)
    return Fit(form=form, alpha=float(alpha), beta=float(beta), r2=r2, d_peak=_d_peak(form, alpha, beta))


def _d_peak(form: str, alpha: float, beta: float) -> float | None:
    """argmax over d >= 0 of the fitted curve (dR/dd = 0). None when the curve never turns down (β <= 0);
    0 when it only falls (best-of-n with α <= 0: the starting policy is the peak)."""
    if beta <= 0:
        return None
    if form == "best_of_n":
        return max(alpha / (2 * beta), 0.0)  # α − 2βd = 0
    exponent = alpha / beta - 1  # α − β(log d + 1) = 0
    return math.exp(exponent) if exponent < 700 else math.inf


def fit_best_of_n(d, gold_gain) -> Fit:
    """Fit gold − gold(d=0) = d (α − β d) by linear least squares (Gao et al. 2022, eq. 1)."""
    return _fit("best_of_n", d, gold_gain)


def fit_rl(d, gold_gain) -> Fit:
    """Fit gold − gold(d=0) = d (α − β log d) by linear least squares (Gao et al. 2022, eq. 2)."""
    return _fit("rl", d, gold_gain)


def fit_points(points: Sequence[OptimizationPoint], form: str | None = None) -> Fit:
    """Fit a curve of :class:`OptimizationPoint` s: d = sqrt(KL), gain relative to the lowest-KL point.

    ``form`` defaults to best_of_n for method "best_of_n" and rl otherwise. The lowest-KL point should be
    the starting policy (KL = 0); its gold is the baseline.
    """
    if not points:
        raise ValueError("no points to fit")
    ordered = sorted(points, key=lambda p: p.kl)
    form = form or ("best_of_n" if ordered[0].method == "best_of_n" else "rl")
    d = np.sqrt(np.maximum([p.kl for p in ordered], 0.0))  # small negative KL estimates are noise: clip
    gain = np.array([p.gold for p in ordered]) - ordered[0].gold
    return _fit(form, d, gain)


def peak(points: Sequence[OptimizationPoint]) -> dict:
    """Where gold peaks along a curve, and whether the proxy kept rising after it (over-optimization).

    Returns {"step", "kl", "d", "gold", "proxy", "gold_last", "proxy_last", "gold_drop", "proxy_rise",
    "overoptimized", "drop_clear"}: gold_drop = gold at the peak − gold at the last point; proxy_rise = proxy
    at the last point − proxy at the peak; overoptimized when both are positive. The peak is the largest of
    noisy estimates, so a drop counts as clear (drop_clear) only when the two points' gold intervals do not
    overlap; None when the points carry no intervals.
    """
    if not points:
        raise ValueError("no points: cannot find a peak")
    ordered = sorted(points, key=lambda p: (p.kl, p.step))
    best = max(ordered, key=lambda p: p.gold)  # first maximum in KL order
    last = ordered[-1]
    gold_drop = best.gold - last.gold
    proxy_rise = last.proxy - best.proxy
    intervals = None not in (best.gold_ci_low, last.gold_ci_high)
    return {"step": best.step, "kl": best.kl, "d": math.sqrt(max(best.kl, 0.0)), "gold": best.gold,
            "proxy": best.proxy, "gold_last": last.gold, "proxy_last": last.proxy, "gold_drop": gold_drop,
            "proxy_rise": proxy_rise, "overoptimized": bool(gold_drop > 0 and proxy_rise > 0),
            "drop_clear": bool(last.gold_ci_high < best.gold_ci_low) if intervals else None}
