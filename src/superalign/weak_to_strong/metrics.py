"""From seeds to the numbers a reviewer would trust: means over seeds, PGR with intervals, and when not to.

PGR = (student − weak) / (ceiling − weak) (Burns et al. 2023, §3), on test accuracy and on AUROC,
computed on the **mean scores over seeds**, with a percentile bootstrap that resamples whole seeds (the
three scores of a seed stay together). The mean of per-seed ratios is not used: one seed whose gap is
0.02 can move it by a whole unit. Each seed's own PGR is kept in the records (``per_seed``).

Scores, agreements and weak-label accuracies are rates: their interval over seeds is the same bootstrap
of the mean, which stays in [0, 1]; gaps take a t-interval. Below :data:`~superalign.stats.MIN_SEEDS`
seeds no interval is given. PGR is reported as *undefined* - with the reason, never as a number - when the
ceiling–weak gap cannot carry it:

- the weak model is as good as or better than the strong ceiling (mean gap ≤ 0);
- the mean gap is below ``min_gap`` (default 0.02): a ratio over a tiny denominator is noise;
- some seed's gap is ≤ 0, or the gap's interval over seeds includes 0: the gap itself is not established.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from superalign.records import Metric, W2SScore
from superalign.stats import MIN_SEEDS, Interval, bootstrap_of_means, mean_ci_over_seeds, pgr

STAGE = "generalize"
METRICS = ("accuracy", "auroc")


@dataclass
class PGRSummary:
    """PGR of one method on one metric, or the reason it is undefined."""

    method: str
    metric: str
    interval: Interval | None  # PGR of the mean scores, bootstrap over seeds; None when undefined
    per_seed: list[float] = field(default_factory=list)
    reason: str | None = None  # why PGR is undefined

    @property
    def defined(self) -> bool:
        return self.interval is not None


def gap_problem(gaps: list[float], min_gap: float) -> str | None:
    """Why a ceiling–weak gap cannot carry a PGR (None when it can). ``gaps``: one per seed."""
    g = np.asarray(gaps, dtype=float)
    if g.size == 0 or not np.all(np.isfinite(g)):
        return "the gap could not be measured (a score is missing)"
    mean = float(g.mean())
    if mean <= 0:
        return (f"the weak model is as good as or better than the strong ceiling (mean gap {mean:+.3f}): "
                "there is no gap to recover, so PGR is meaningless")
    if mean < min_gap:
        return f"the ceiling–weak gap ({mean:.3f}) is below min_gap ({min_gap:g}): too small for PGR to mean anything"
    if np.any(g <= 0):
        return (f"the gap is not positive in every seed (per seed: {', '.join(f'{x:+.3f}' for x in g)}): "
                "per-seed PGR would change sign")
    ci = mean_ci_over_seeds(g)
    if g.size >= MIN_SEEDS and not ci.low > 0:
        return f"the gap's 95% interval over seeds [{ci.low:.3f}, {ci.high:.3f}] includes 0"
    return None


def near_chance(auroc: Interval) -> bool:
    """An AUROC whose interval over seeds includes 0.5 (one seed: within 0.05 of it)."""
    if math.isnan(auroc.low) or math.isnan(auroc.high):
        return abs(auroc.value - 0.5) < 0.05
    return auroc.low <= 0.5 <= auroc.high


def pgr_summary(method: str, metric: str, weak: list[float], ceiling: list[float], student: list[float],
                min_gap: float) -> PGRSummary:
    """PGR of ``method`` from per-seed scores (same seeds, same order)."""
    gaps = [c - w for c, w in zip(ceiling, weak)]
    problem = gap_problem(gaps, min_gap)
    if problem:
        return PGRSummary(method, metric, None, reason=problem)
    per_seed = [pgr(w, s, c) for w, s, c in zip(weak, student, ceiling)]
    return PGRSummary(method, metric, bootstrap_of_means([weak, student, ceiling], pgr_of_means), per_seed)


def pgr_of_means(weak, student, ceiling):
    """PGR of mean scores; vectorized over bootstrap resamples (arrays in, array out)."""
    return (student - weak) / (ceiling - weak)


def rate_interval(values: list[float]) -> Interval:
    """Mean of a rate over seeds with a bootstrap-over-seeds interval (inside [0, 1])."""
    return bootstrap_of_means([values])


def _score(name: str, ci: Interval, **fields) -> W2SScore:
    low, high = (ci.low, ci.high) if not (math.isnan(ci.low) or math.isnan(ci.high)) else (None, None)
    return W2SScore(name=name, value=ci.value, ci_low=low, ci_high=high, **fields)


def as_metric(score: W2SScore) -> Metric:
    """The score as a plain metric (metrics.jsonl, results.json): name, value, interval, seeds, the pair."""
    return Metric(stage=STAGE, name=score.name, value=score.value, ci_low=score.ci_low, ci_high=score.ci_high,
                  n=len(score.seeds), model=score.pair, meta={"rate": False})


def pair_label(weak: str, strong: str) -> str:
    return f"{weak} -> {strong}"


def summarize(outcomes: list, min_gap: float) -> tuple[list[W2SScore], list[str]]:
    """Scores (means over seeds, gaps, PGRs) and warnings for every (task, pair) in ``outcomes``.

    ``outcomes``: :class:`~superalign.weak_to_strong.protocol.SeedOutcome` s, several seeds per (task, pair).
    """
    groups: dict[tuple[str, str, str], list] = {}
    for o in outcomes:
        groups.setdefault((o.task, o.weak, o.strong), []).append(o)
    scores: list[W2SScore] = []
    warnings: list[str] = []
    for (task, weak, strong), seeds in groups.items():
        model = pair_label(weak, strong)
        seeds = sorted(seeds, key=lambda o: o.seed)
        roles = list(seeds[0].models)
        methods = [r for r in roles if r not in ("weak", "ceiling")]
        common = dict(task=task, weak=weak, strong=strong, seeds=[o.seed for o in seeds])
        for metric in METRICS:
            values = {r: [o.score(r, metric) for o in seeds] for r in roles}
            if any(not np.all(np.isfinite(v)) for v in values.values()):
                warnings.append(f"{task} ({model}): {metric} is undefined on this test set (one class?)")
                continue
            for role in roles:
                ci = rate_interval(values[role])
                chance = None
                if role == "weak" and metric == "auroc" and near_chance(ci):
                    chance = (f"the weak supervisor is near chance (AUROC {ci.value:.3f}, 95% interval "
                              f"[{ci.low:.3f}, {ci.high:.3f}] includes 0.5): its labels carry little "
                              "signal to generalize from")
                    warnings.append(f"{task} ({model}): {chance}")
                scores.append(_score(f"{task}.{role}.{metric}", ci, kind="score", role=role, metric=metric,
                                     per_seed=values[role], near_chance=chance, **common))
            gaps = [c - w for c, w in zip(values["ceiling"], values["weak"])]
            problem = gap_problem(gaps, min_gap)
            scores.append(_score(f"{task}.gap.{metric}", mean_ci_over_seeds(gaps), kind="gap", metric=metric,
                                 per_seed=gaps, pgr_defined=problem is None, reason=problem, **common))
            if problem:
                warnings.append(f"{task} ({model}): PGR on {metric} is undefined: {problem}")
                continue
            for method in methods:
                s = pgr_summary(method, metric, values["weak"], values["ceiling"], values[method], min_gap)
                scores.append(_score(f"{task}.{method}.pgr_{metric}", s.interval, kind="pgr", role=method,
                                     metric=metric, per_seed=s.per_seed, **common))
        agreement = {m: [o.student_weak_agreement[m] for o in seeds] for m in methods}
        for method, vals in agreement.items():
            scores.append(_score(f"{task}.{method}.weak_agreement", rate_interval(vals), kind="agreement",
                                 role=method, per_seed=vals, **common))
        labels_acc = [o.weak_label_accuracy for o in seeds]
        scores.append(_score(f"{task}.weak_labels.accuracy", rate_interval(labels_acc), kind="weak_labels",
                             per_seed=labels_acc, **common))
    return scores, warnings


def pgr_rows(scores: list[W2SScore]) -> list[dict]:
    """One row per (task, pair): its scores and PGRs keyed by (role, metric), and gaps by metric."""
    rows: dict[tuple, dict] = {}
    for s in scores:
        row = rows.setdefault((s.task, s.pair), {"task": s.task, "pair": s.pair, "scores": {}, "pgr": {}, "gap": {}})
        if s.kind == "score":
            row["scores"][(s.role, s.metric)] = s
        elif s.kind == "pgr":
            row["pgr"][(s.role, s.metric)] = s
        elif s.kind == "gap":
            row["gap"][s.metric] = s
    return list(rows.values())
