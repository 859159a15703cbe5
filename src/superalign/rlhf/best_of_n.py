"""Best-of-n sampling against a reward model: its KL, an unbiased estimate of its reward, selection.

Best-of-n draws n responses from the policy and keeps the one the proxy reward model scores highest.
It needs no training, and its KL from the policy has a closed form, so it traces the first
over-optimization curve of Gao et al. 2022 cheaply: gold and proxy reward of the selected response
against d = sqrt(KL) as n grows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from superalign.records import OptimizationPoint
from superalign.stats import bootstrap_ci


@dataclass(frozen=True)
class BestOfN:
    """Expected proxy and gold reward of the best-of-n response (for one prompt or averaged over prompts)."""

    proxy: float
    gold: float


def best_of_n_kl(n: int) -> float:
    """KL(best-of-n || policy) = log n − (n − 1)/n nats.

    Stiennon et al. 2020 (appendix on best-of-n), used by Gao et al. 2022 (§2) as the KL of BoN; exact for
    rewards without ties, an upper bound otherwise (Beirami et al. 2024, "Theoretical guarantees on the
    best-of-n alignment policy").
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return math.log(n) - (n - 1) / n


def _check_scores(proxy, gold) -> tuple[np.ndarray, np.ndarray]:
    p, g = np.asarray(proxy, dtype=float), np.asarray(gold, dtype=float)
    if p.shape != g.shape:
        raise ValueError(f"proxy and gold differ in shape: {p.shape} vs {g.shape}")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(g))):
        raise ValueError("proxy and gold must be finite")
    return p, g


def best_of_n_weights(N: int, n: int) -> np.ndarray:
    """P(the sample of proxy rank i, 1 = lowest, is the best of a uniform random n-subset of N), [N].

    = C(i − 1, n − 1) / C(N, n): the other n − 1 members of the subset must all rank below i. Computed in
    log space so N in the thousands is fine.
    """
    if not 1 <= n <= N:
        raise ValueError(f"need 1 <= n <= N samples, got n={n}, N={N}")
    i = np.arange(1, N + 1)
    out = np.zeros(N)
    ok = i >= n
    k = i[ok] - 1
    log_w = (gammaln(k + 1) - gammaln(n) - gammaln(k - n + 2)) - (gammaln(N + 1) - gammaln(n + 1) - gammaln(N - n + 1))
    out[ok] = np.exp(log_w)
    return out


def unbiased_best_of_n(proxy, gold, n: int) -> BestOfN:
    """Expected proxy and gold of best-of-n from N >= n samples of one prompt, without resampling noise.

    Averages over all n-subsets of the N samples at once (an order-statistics / U-statistic estimator):
    sort by proxy, weight the i-th lowest by C(i−1, n−1)/C(N, n). This is the unbiased best-of-n
    estimator of Gao et al. 2022 (appendix; after Nakano et al. 2021, WebGPT). Ties in proxy are broken
    uniformly at random in expectation (gold averaged within a tie).
    """
    p, g = _check_scores(proxy, gold)
    if p.ndim != 1:
        raise ValueError(f"expected one prompt's samples [N], got shape {p.shape}")
    order = np.argsort(p, kind="stable")
    p_sorted, g_sorted = p[order], g[order]
    # Replace gold by its mean within groups of equal proxy (random tie-breaking in expectation).
    _, inverse = np.unique(p_sorted, return_inverse=True)
    g_tied = (np.bincount(inverse, weights=g_sorted) / np.bincount(inverse))[inverse]
    w = best_of_n_weights(len(p), n)
    return BestOfN(proxy=float(w @ p_sorted), gold=float(w @ g_tied))


def best_of_n_curve(proxy, gold, ns: Sequence[int], method: str = "best_of_n", n_boot: int = 2000,
                    seed: int = 0, model: str | None = None) -> list[OptimizationPoint]:
    """Over-optimization points for best-of-n: for each n, the mean over prompts of the unbiased estimate.

    ``proxy``, ``gold``: [prompts, N] scores of N samples per prompt. Each point has ``step = n``,
    ``kl = log n − (n−1)/n`` and a bootstrap 95% interval of gold over prompts.
    """
    p, g = _check_scores(proxy, gold)
    if p.ndim != 2 or p.shape[0] < 1:
        raise ValueError(f"expected scores [prompts, N], got shape {p.shape}")
    points = []
    for n in ns:
        per_prompt = [unbiased_best_of_n(pr, gr, n) for pr, gr in zip(p, g)]
        golds = np.array([b.gold for b in per_prompt])
        ci = bootstrap_ci(golds, n_boot=n_boot, seed=seed)
        points.append(OptimizationPoint(
            method=method, step=int(n), kl=best_of_n_kl(n), gold=float(golds.mean()),
            proxy=float(np.mean([b.proxy for b in per_prompt])), gold_ci_low=ci.low, gold_ci_high=ci.high,
            seed=seed, model=model, meta={"prompts": int(p.shape[0]), "samples_per_prompt": int(p.shape[1])}))
    return points


def select_best(responses: Sequence[Sequence[str]], scores) -> list[str]:
    """For each prompt, the response with the highest score (the first one on ties).

    ``scores``: per prompt, one score per response (nested lists, or an array/tensor [prompts, N]).
    """
    if len(responses) != len(scores):
        raise ValueError(f"{len(responses)} response lists but {len(scores)} score lists")
    best = []
    for group, s in zip(responses, scores):
        s = np.asarray([float(x) for x in s])
        if len(group) == 0 or len(group) != len(s):
            raise ValueError(f"each prompt needs as many scores as responses (>= 1), got {len(s)} and {len(group)}")
        best.append(group[int(np.argmax(s))])
    return best
