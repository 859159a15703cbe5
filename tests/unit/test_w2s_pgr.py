"""PGR from seeds: the formula, its edge cases, and when it must be reported as undefined."""

from __future__ import annotations

import itertools

import math

import numpy as np
import pytest

from superalign.stats import pgr
from superalign.weak_to_strong.classifier import FitReport
from superalign.weak_to_strong.metrics import (
    as_metric,
    gap_problem,
    pgr_summary,
    summarize,
)
from superalign.weak_to_strong.protocol import SeedOutcome, Trained
from superalign.world.vault import Scores


def test_pgr_formula_edge_cases():
    assert pgr(0.6, 0.6, 0.8) == 0.0  # the student only matches its supervisor
    assert pgr(0.6, 0.8, 0.8) == 1.0  # it matches the ceiling
    assert pgr(0.6, 0.7, 0.8) == pytest.approx(0.5)
    assert pgr(0.6, 0.5, 0.8) == pytest.approx(-0.5)  # worse than the supervisor: negative, not clipped
    assert pgr(0.6, 0.9, 0.8) == pytest.approx(1.5)  # better than the ceiling: above 1, not clipped
    with pytest.raises(ValueError, match="no performance gap"):
        pgr(0.7, 0.75, 0.7)


def test_undefined_when_the_weak_model_beats_the_ceiling():
    s = pgr_summary("naive", "accuracy", weak=[0.80, 0.82, 0.81], ceiling=[0.75, 0.76, 0.74],
                    student=[0.78, 0.79, 0.77], min_gap=0.02)
    assert not s.defined and s.interval is None
    assert "better than the strong ceiling" in s.reason


def test_undefined_when_the_gap_is_below_min_gap():
    problem = gap_problem([0.01, 0.012, 0.009], min_gap=0.02)
    assert problem and "below min_gap" in problem


def test_undefined_when_a_seed_flips_the_gap():
    problem = gap_problem([0.10, -0.01, 0.08], min_gap=0.02)
    assert problem and "not positive in every seed" in problem


def test_undefined_when_the_gap_interval_includes_zero():
    problem = gap_problem([0.30, 0.01, 0.02], min_gap=0.02)  # positive, but far too noisy over 3 seeds
    assert problem and "includes 0" in problem


def test_defined_pgr_is_the_pgr_of_mean_scores_with_a_bootstrap_over_seeds():
    weak, ceiling, student = [0.6, 0.62, 0.58], [0.8, 0.82, 0.79], [0.7, 0.7, 0.7]
    s = pgr_summary("confidence", "accuracy", weak, ceiling, student, min_gap=0.02)
    per_seed = [(st - w) / (c - w) for w, c, st in zip(weak, ceiling, student)]
    assert s.defined and s.per_seed == pytest.approx(per_seed)  # each seed's own PGR stays in the record
    assert s.interval.value == pytest.approx((0.7 - 0.6) / (0.80333 - 0.6), abs=1e-4)  # of the means
    assert s.interval.value != pytest.approx(np.mean(per_seed), abs=1e-4)
    assert s.interval.low < s.interval.value < s.interval.high and s.interval.n == 3
    # the bootstrap resamples whole seeds: its bounds are PGRs of means over some multiset of the seeds
    w, c, st = map(np.array, (weak, ceiling, student))
    combos = [(st[list(i)].mean() - w[list(i)].mean()) / (c[list(i)].mean() - w[list(i)].mean())
              for i in itertools.product(range(3), repeat=3)]
    assert min(combos) - 1e-9 <= s.interval.low and s.interval.high <= max(combos) + 1e-9


def _outcome(seed: int, weak: float, ceiling: float, naive: float, task: str = "fact") -> SeedOutcome:
    out = SeedOutcome(task, "w", "s", seed)
    for role, acc in (("weak", weak), ("ceiling", ceiling), ("naive", naive)):
        out.models[role] = Trained(role, role, np.zeros(4), FitReport(),
                                   Scores(accuracy=acc, auroc=acc, n=100, correct=np.zeros(100)))
    out.student_weak_agreement["naive"] = 0.9
    out.weak_label_accuracy = weak
    return out


def test_summarize_writes_pgr_metrics_only_when_defined():
    good = [_outcome(s, 0.6 + 0.01 * s, 0.8, 0.7) for s in range(3)]
    flat = [_outcome(s, 0.7, 0.7 + 0.001 * s, 0.7, task="policy") for s in range(3)]
    metrics, warnings = summarize(good + flat, min_gap=0.02)
    names = {m.name for m in metrics}
    assert "fact.naive.pgr_accuracy" in names and "fact.naive.pgr_auroc" in names
    assert not any(n.startswith("policy.") and "pgr" in n for n in names)  # no meaningless ratio
    gap = next(m for m in metrics if m.name == "policy.gap.accuracy")
    assert gap.pgr_defined is False and "below min_gap" in gap.reason
    assert any("policy" in w and "undefined" in w for w in warnings)
    pgr_m = next(m for m in metrics if m.name == "fact.naive.pgr_accuracy")
    assert len(pgr_m.seeds) == 3 and len(pgr_m.per_seed) == 3 and pgr_m.ci_low < pgr_m.value < pgr_m.ci_high
    assert as_metric(pgr_m).n == 3 and as_metric(pgr_m).model == "w -> s"
    assert all(math.isfinite(m.value) for m in metrics)  # metrics.jsonl cannot hold NaN


def test_a_weak_supervisor_near_chance_is_flagged():
    outcomes = [_outcome(s, 0.49 + 0.01 * s, 0.8, 0.6) for s in range(3)]
    metrics, warnings = summarize(outcomes, min_gap=0.02)
    weak = next(m for m in metrics if m.name == "fact.weak.auroc")
    assert "near chance" in weak.near_chance
    assert any("near chance" in w for w in warnings)
    good = [_outcome(s, 0.70 + 0.01 * s, 0.8, 0.75) for s in range(3)]
    assert not any("near chance" in w for w in summarize(good, min_gap=0.02)[1])
