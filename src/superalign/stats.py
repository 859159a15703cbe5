"""Statistics for honest numbers: confidence intervals, AUROC, PGR and calibration.

numpy and scipy (no torch): every function is short, cites where its formula comes from, and
takes plain arrays. Intervals are returned as :class:`Interval` so that callers never juggle tuples.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.stats

# Largest number of resampled values held in memory at once by the vectorized bootstrap (~32 MB).
_BOOT_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval [low, high] computed from ``n`` items (or seeds).

    ``low``/``high`` are NaN when no interval can be computed (e.g. a t-interval from one seed).
    """

    value: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies strictly on one side of 0 (an effect, not 'no effect')."""
        return bool(self.low > 0 or self.high < 0)  # NaN compares False: no interval, no claim

    def contains(self, x: float) -> bool:
        """True when ``low <= x <= high`` (False when the interval is undefined)."""
        return bool(self.low <= x <= self.high)

    @property
    def width(self) -> float:
        return self.high - self.low

    def __str__(self) -> str:
        return f"{self.value:.4g} [{self.low:.4g}, {self.high:.4g}] (n={self.n})"


def finite_or_none(x: float | None) -> float | None:
    """``x`` as a float, or None where it is None, NaN or infinite (an undefined bound: the records write null)."""
    return None if x is None or not math.isfinite(x) else float(x)


def _as_1d(values, name: str = "values") -> np.ndarray:
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty: an interval needs at least one value")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _apply_rows(statistic: Callable, samples: np.ndarray) -> np.ndarray:
    """statistic over each row of ``samples`` [n_rows, n]; uses ``axis=1`` when the callable takes it."""
    try:
        out = np.asarray(statistic(samples, axis=1), dtype=float)
        if out.shape == (samples.shape[0],):
            return out
    except TypeError:
        pass
    return np.array([statistic(row) for row in samples], dtype=float)


def bootstrap_ci(
    values,
    statistic: Callable = np.mean,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile-bootstrap interval of ``statistic(values)``.

    Resamples ``values`` with replacement ``n_boot`` times (vectorized, in chunks); reproducible for a
    given ``seed``. ``n == 0`` raises ValueError; ``n == 1`` gives ``low == high == value``.
    ``statistic`` should accept ``axis=`` (numpy reductions do); other callables are applied row by row.
    """
    x = _as_1d(values)
    _check_confidence(confidence)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    value = float(statistic(x))
    n = x.size
    if n == 1:
        return Interval(value, value, value, 1)
    rng = np.random.default_rng(seed)
    rows_per_chunk = max(1, _BOOT_CHUNK_ELEMENTS // n)
    stats = []
    for start in range(0, n_boot, rows_per_chunk):
        rows = min(rows_per_chunk, n_boot - start)
        idx = rng.integers(0, n, size=(rows, n))  # [rows, n] resample indices
        stats.append(_apply_rows(statistic, x[idx]))
    boot = np.concatenate(stats)  # [n_boot]
    # Percentile interval: Efron & Tibshirani (1993), An Introduction to the Bootstrap, ch. 13.
    alpha = 1.0 - confidence
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return Interval(value, float(low), float(high), n)


def ratio_bootstrap_ci(
    numerators, denominators, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Interval of ``sum(numerators) / sum(denominators)``, resampling whole clusters (rows).

    For pooled rates whose units share a cluster (e.g. the instructions of one prompt, answered by one
    response): resampling clusters keeps their correlation (cluster bootstrap, Davison & Hinkley 1997,
    §3.8). ``n`` of the result is the number of clusters.
    """
    num, den = _as_1d(numerators, "numerators"), _as_1d(denominators, "denominators")
    if num.shape != den.shape:
        raise ValueError(f"numerators and denominators differ in length: {num.size} vs {den.size}")
    if den.sum() <= 0:
        raise ValueError("denominators sum to zero: the ratio is undefined")
    _check_confidence(confidence)
    value = float(num.sum() / den.sum())
    if num.size == 1:
        return Interval(value, value, value, 1)
    idx = np.random.default_rng(seed).integers(0, num.size, size=(n_boot, num.size))  # [n_boot, n]
    boot = num[idx].sum(axis=1) / np.maximum(den[idx].sum(axis=1), 1e-12)
    alpha = 1.0 - confidence
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return Interval(value, float(low), float(high), int(num.size))


def paired_bootstrap_diff(
    a, b, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Interval of ``mean(a - b)`` for paired scores (same items, same order), resampling items.

    Pairing removes the between-item variance both conditions share, so the interval is honest and
    narrower than comparing two independent intervals (Efron & Tibshirani 1993, §8.3 paired data).
    """
    xa, xb = _as_1d(a, "a"), _as_1d(b, "b")
    if xa.shape != xb.shape:
        raise ValueError(f"paired scores need equal lengths, got {xa.size} and {xb.size}")
    return bootstrap_ci(xa - xb, np.mean, n_boot=n_boot, confidence=confidence, seed=seed)


# Fewest seeds an interval over seeds is computed from: with two, a t-interval spans ±12.7 standard errors
# (0.562 [−0.761, 1.886] for an accuracy) and a bootstrap has three distinct resamples; neither informs.
MIN_SEEDS = 3


def bootstrap_diff(a, b, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Interval of ``mean(a) - mean(b)`` for two independent samples, each resampled on its own.

    For rates measured on different items (e.g. misbehaviour on one topic against the others); when the
    items are the same in both conditions use :func:`paired_bootstrap_diff`. ``n`` is ``len(a) + len(b)``.
    """
    x, y = _as_1d(a, "a"), _as_1d(b, "b")
    _check_confidence(confidence)
    rng = np.random.default_rng(seed)
    boot = (x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
            - y[rng.integers(0, y.size, size=(n_boot, y.size))].mean(axis=1))  # [n_boot]
    alpha = 1.0 - confidence
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return Interval(float(x.mean() - y.mean()), float(low), float(high), int(x.size + y.size))


def mean_ci_over_seeds(values, confidence: float = 0.95, min_n: int = MIN_SEEDS) -> Interval:
    """t-interval of the mean over independent seeds: mean ± t_{1-α/2, n-1} · s / √n (Student 1908).

    For differences and gaps, which may be negative; a rate's mean over seeds takes
    :func:`bootstrap_of_means`, whose interval stays in [0, 1]. Below ``min_n`` seeds ``low`` and ``high``
    are NaN: report 'no interval', never a number and never certainty.
    """
    x = _as_1d(values)
    _check_confidence(confidence)
    n = x.size
    mean = float(x.mean())
    if n < max(2, min_n):
        return Interval(mean, math.nan, math.nan, n)
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    half = float(scipy.stats.t.ppf(1.0 - (1.0 - confidence) / 2.0, n - 1)) * sem
    return Interval(mean, mean - half, mean + half, n)


def bootstrap_of_means(columns, combine: Callable | None = None, n_boot: int = 2000, confidence: float = 0.95,
                       seed: int = 0, min_n: int = MIN_SEEDS) -> Interval:
    """Percentile-bootstrap interval of ``combine(mean(column_1), ..., mean(column_k))``, resampling seeds.

    ``columns``: k sequences of per-seed values, the same seeds in the same order; each resample draws
    seed indices once and uses them for every column (the columns stay paired). ``combine`` maps the k
    means to the statistic, vectorized over arrays (default: the one column's mean). For PGR,
    ``combine=lambda w, s, c: (s - w) / (c - w)`` gives the PGR *of the mean scores*, not a mean of
    per-seed ratios, which a seed with a small gap can throw anywhere. A percentile interval of a mean of
    rates stays in [0, 1]. Below ``min_n`` seeds: NaN bounds (not informative).
    """
    x = np.stack([_as_1d(c, "columns") for c in columns])  # [k, n]
    _check_confidence(confidence)
    combine = combine or (lambda m: m)
    value = float(combine(*x.mean(axis=1)))
    n = x.shape[1]
    if n < max(2, min_n):
        return Interval(value, math.nan, math.nan, n)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))  # [n_boot, n]
    boot = np.asarray(combine(*x[:, idx].mean(axis=2)), dtype=float)  # [n_boot]
    alpha = 1.0 - confidence
    low, high = np.quantile(boot[np.isfinite(boot)], [alpha / 2, 1 - alpha / 2])
    return Interval(value, float(low), float(high), n)


# --- Discrimination, weak-to-strong and calibration ------------------------------------------------


def _binary_labels(labels) -> np.ndarray:
    y = np.asarray(labels).reshape(-1)
    if y.dtype != bool:
        if not np.all(np.isin(y, [0, 1])):
            raise ValueError("labels must be boolean or 0/1")
        y = y.astype(bool)
    return y


def auroc(labels, scores) -> float:
    """Area under the ROC curve: P(score of a random positive > random negative), ties count 1/2.

    Computed as the Mann–Whitney U statistic with average ranks for ties, AUC = U / (n_pos · n_neg)
    (Mann & Whitney 1947; Hanley & McNeil 1982). Raises ValueError when only one class is present.
    """
    y = _binary_labels(labels)
    s = np.asarray(scores, dtype=float).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"AUROC needs both classes; got {n_pos} positive and {n_neg} negative labels"
        )
    # Average ranks (1-based) with ties sharing the mean of the ranks they span.
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # rank of the last element in each tie group
    avg_rank = ends - (counts - 1) / 2.0
    ranks = avg_rank[inverse]
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def auroc_interval(labels, scores, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """AUROC with a percentile bootstrap that resamples positives and negatives separately (both classes
    stay in every resample). With one example in a class the resample gives it back: no interval (NaN bounds)."""
    _check_confidence(confidence)
    y = _binary_labels(labels)
    s = np.asarray(scores, dtype=float).reshape(-1)
    value = auroc(y, s)
    pos, neg = s[y], s[~y]
    if min(pos.size, neg.size) < 2:
        return Interval(value, float("nan"), float("nan"), int(y.size))
    boots = _bootstrap_aurocs(pos, neg, n_boot, np.random.default_rng(seed))
    low, high = np.quantile(boots, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(value, float(low), float(high), int(y.size))


def _bootstrap_aurocs(pos: np.ndarray, neg: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """AUROCs [n_boot] of resamples of positives and negatives, each equal bit for bit to :func:`auroc` of
    that resample. A resample is drawn as index counts; its U is counts_pos · wins · counts_neg, with wins[i, j]
    = 1 when positive i outscores negative j and 1/2 on a tie (the Mann–Whitney count, which average ranks
    give too). Every term is a multiple of 1/2 far below 2^53, so the sums are exact in any order."""
    if pos.size * neg.size > _BOOT_CHUNK_ELEMENTS:  # the wins matrix would not fit: one resample at a time
        both = np.r_[np.ones(pos.size, bool), np.zeros(neg.size, bool)]
        return np.array([auroc(both, np.r_[pos[rng.integers(0, pos.size, pos.size)],
                                            neg[rng.integers(0, neg.size, neg.size)]]) for _ in range(n_boot)])
    wins = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])  # [P, N]
    draws_pos = np.empty((n_boot, pos.size), dtype=np.int64)
    draws_neg = np.empty((n_boot, neg.size), dtype=np.int64)
    for b in range(n_boot):  # drawn in the order the per-resample loop draws them: the same resamples
        draws_pos[b] = rng.integers(0, pos.size, pos.size)
        draws_neg[b] = rng.integers(0, neg.size, neg.size)
    u = ((_counts(draws_pos) @ wins) * _counts(draws_neg)).sum(axis=1)  # [n_boot]
    return u / (pos.size * neg.size)


def _counts(draws: np.ndarray) -> np.ndarray:
    """How often each index occurs in each row of ``draws`` [b, n] (indices in [0, n)), as floats [b, n]."""
    b, n = draws.shape
    flat = draws + n * np.arange(b)[:, None]
    return np.bincount(flat.ravel(), minlength=b * n).reshape(b, n).astype(float)


def pgr(weak: float, student: float, ceiling: float) -> float:
    """Performance gap recovered: (student − weak) / (ceiling − weak) (Burns et al. 2023, §3).

    0 means the strong student only matches its weak supervisor, 1 that it matches the strong ceiling
    trained on ground truth; values outside [0, 1] are possible and are returned as they are.
    Raises ValueError when ``ceiling == weak``: with no gap there is nothing to recover.
    """
    weak, student, ceiling = float(weak), float(student), float(ceiling)
    gap = ceiling - weak
    if not all(math.isfinite(v) for v in (weak, student, ceiling)):
        raise ValueError(f"PGR needs finite scores, got weak={weak}, student={student}, ceiling={ceiling}")
    if abs(gap) <= 1e-12 * max(1.0, abs(weak), abs(ceiling)):
        raise ValueError(
            f"PGR is undefined: the strong ceiling ({ceiling:g}) equals the weak supervisor ({weak:g}), "
            "so there is no performance gap to recover"
        )
    return (student - weak) / gap


def expected_calibration_error(labels, probs, n_bins: int = 10) -> float:
    """Expected calibration error of predicted probabilities P(label = 1).

    ECE = Σ_b (n_b / N) · |mean(labels in b) − mean(probs in b)| over ``n_bins`` equal-width bins of
    [0, 1] (Naeini et al. 2015; Guo et al. 2017, eq. 3, here on P(y=1) as in a reliability diagram).
    """
    y = _binary_labels(labels).astype(float)
    p = np.asarray(probs, dtype=float).reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"labels and probs differ in length: {y.size} vs {p.size}")
    if p.size == 0:
        raise ValueError("ECE needs at least one prediction")
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("probs must lie in [0, 1]")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    # Bin i holds [i/n, (i+1)/n); p == 1 goes to the last bin.
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    sum_y = np.bincount(bins, weights=y, minlength=n_bins)
    sum_p = np.bincount(bins, weights=p, minlength=n_bins)
    filled = counts > 0
    gaps = np.abs(sum_y[filled] - sum_p[filled]) / counts[filled]
    return float(np.sum(counts[filled] / p.size * gaps))
