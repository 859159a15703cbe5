import itertools
import math

import numpy as np
import pytest

from superalign.stats import (
    Interval,
    auroc,
    auroc_interval,
    bootstrap_ci,
    bootstrap_of_means,
    expected_calibration_error,
    mean_ci_over_seeds,
    paired_bootstrap_diff,
    pgr,
    ratio_bootstrap_ci,
)


def test_bootstrap_ci_contains_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(1)
    small = rng.normal(0.3, 1.0, size=30)
    large = rng.normal(0.3, 1.0, size=3000)
    ci_small, ci_large = bootstrap_ci(small), bootstrap_ci(large)
    assert ci_small.contains(small.mean()) and ci_large.contains(large.mean())
    assert ci_small.value == pytest.approx(small.mean())
    assert ci_large.width < ci_small.width / 5  # width shrinks like 1/sqrt(n): 10x here
    assert ci_large.n == 3000
    assert ci_large.contains(0.3)


def test_bootstrap_ci_reproducible_with_seed():
    values = np.random.default_rng(0).normal(size=50)
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)


def test_bootstrap_ci_edge_cases():
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci([])
    assert bootstrap_ci([0.7]) == Interval(0.7, 0.7, 0.7, 1)
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([1.0, float("nan")])


def test_bootstrap_ci_other_statistics():
    values = np.arange(101, dtype=float)
    med = bootstrap_ci(values, np.median)
    assert med.value == 50 and med.low < 50 < med.high
    # a callable without axis= falls back to row by row and gives the same result as the vectorized path
    assert bootstrap_ci(values, lambda v: float(np.mean(v)), n_boot=200) == bootstrap_ci(values, n_boot=200)


def test_paired_bootstrap_diff_detects_a_consistent_small_effect():
    rng = np.random.default_rng(0)
    item_difficulty = rng.normal(0, 1, size=200)
    a = item_difficulty + 0.1
    b = item_difficulty + rng.normal(0, 0.01, size=200)
    diff = paired_bootstrap_diff(a, b)
    assert diff.excludes_zero and diff.contains(0.1)
    assert not paired_bootstrap_diff(b, b).excludes_zero
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap_diff([1, 2], [1, 2, 3])


def test_ratio_bootstrap_resamples_clusters():
    # 3 prompts with 2, 1, 3 instructions followed out of 2, 2, 3.
    ci = ratio_bootstrap_ci([2, 1, 3], [2, 2, 3], n_boot=500)
    assert ci.value == pytest.approx(6 / 7) and ci.n == 3
    assert ci.low < ci.value <= ci.high <= 1.0
    assert ratio_bootstrap_ci([1], [2]).low == 0.5
    with pytest.raises(ValueError, match="zero"):
        ratio_bootstrap_ci([0, 0], [0, 0])


def test_mean_ci_over_seeds():
    ci = mean_ci_over_seeds([1.0, 2.0, 3.0])
    half = 4.303 * 1.0 / math.sqrt(3)  # t_{0.975,2} * s / sqrt(n), s = 1
    assert ci.value == 2.0
    assert ci.low == pytest.approx(2.0 - half, abs=1e-3) and ci.high == pytest.approx(2.0 + half, abs=1e-3)
    one = mean_ci_over_seeds([0.5])
    assert one.value == 0.5 and math.isnan(one.low) and not one.excludes_zero
    two = mean_ci_over_seeds([0.2, 0.9])  # a t-interval would be 0.55 [−3.9, 5.0]: not informative
    assert two.value == 0.55 and math.isnan(two.low) and math.isnan(two.high)


def test_bootstrap_of_means_keeps_rates_in_range_and_takes_the_statistic_of_means():
    acc = [0.98, 0.99, 1.0, 0.97, 1.0]  # a t-interval would reach past 1
    ci = bootstrap_of_means([acc])
    assert ci.value == pytest.approx(np.mean(acc)) and 0.0 <= ci.low <= ci.value <= ci.high <= 1.0
    # PGR of the means, not the mean of per-seed PGRs: seed 2's tiny gap (0.01) gives a per-seed PGR of −5
    weak, student, ceiling = [0.50, 0.60, 0.55], [0.55, 0.55, 0.57], [0.60, 0.61, 0.65]
    of_means = bootstrap_of_means([weak, student, ceiling], lambda w, s, c: (s - w) / (c - w))
    assert of_means.value == pytest.approx((0.5567 - 0.55) / (0.62 - 0.55), abs=1e-3)
    per_seed = np.mean([(s - w) / (c - w) for w, s, c in zip(weak, student, ceiling)])
    assert per_seed < -1 and of_means.value > 0
    assert of_means.low <= of_means.value <= of_means.high
    # resamples keep seeds paired: identical columns give a difference of exactly 0 in every resample
    same = bootstrap_of_means([acc, acc], lambda a, b: a - b)
    assert same.low == same.high == 0.0
    assert math.isnan(bootstrap_of_means([[0.1, 0.2]]).low)  # two seeds: no interval


def _auroc_brute_force(labels, scores):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auroc_matches_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=60)
    scores = rng.integers(0, 5, size=60).astype(float)  # many ties
    assert auroc(labels, scores) == pytest.approx(_auroc_brute_force(labels, scores))
    labels_b = [True, False, True, False, True]
    scores_b = [0.9, 0.9, 0.3, 0.1, 0.5]
    assert auroc(labels_b, scores_b) == pytest.approx(_auroc_brute_force(labels_b, scores_b))


def test_auroc_perfect_inverted_and_chance():
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auroc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert auroc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        auroc([1, 1, 1], [0.1, 0.2, 0.3])


@pytest.mark.parametrize("matrix_fits", [True, False])
def test_auroc_interval_is_the_per_resample_bootstrap_bit_for_bit(monkeypatch, matrix_fits):
    """The bootstrap counts each resample's wins at once; its interval is the one that resamples positives and
    negatives separately and ranks each resample, to the last bit, ties included (and the per-resample path
    that large inputs take gives it too)."""
    import superalign.stats as stats

    if not matrix_fits:
        monkeypatch.setattr(stats, "_BOOT_CHUNK_ELEMENTS", 10)
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=70).astype(bool)
    scores = np.round(rng.normal(size=70) + labels, 1)  # rounded: many ties across the classes
    pos, neg, draw = scores[labels], scores[~labels], np.random.default_rng(11)
    both = np.r_[np.ones(pos.size, bool), np.zeros(neg.size, bool)]
    boots = [auroc(both, np.r_[pos[draw.integers(0, pos.size, pos.size)], neg[draw.integers(0, neg.size, neg.size)]])
             for _ in range(500)]
    low, high = np.quantile(boots, [0.025, 0.975])
    iv = auroc_interval(labels, scores, n_boot=500, seed=11)
    assert (iv.value, iv.low, iv.high, iv.n) == (auroc(labels, scores), low, high, 70)
    assert iv.low < iv.value < iv.high


def test_pgr_edge_cases():
    assert pgr(weak=0.6, student=0.6, ceiling=0.9) == 0.0
    assert pgr(weak=0.6, student=0.9, ceiling=0.9) == pytest.approx(1.0)
    assert pgr(weak=0.6, student=0.75, ceiling=0.9) == pytest.approx(0.5)
    assert pgr(weak=0.6, student=0.95, ceiling=0.9) > 1.0
    assert pgr(weak=0.6, student=0.5, ceiling=0.9) < 0.0
    with pytest.raises(ValueError, match="no performance gap"):
        pgr(weak=0.7, student=0.8, ceiling=0.7)


def test_ece_perfectly_calibrated_is_zero_and_overconfident_is_not():
    probs, labels = [], []
    for p in np.arange(0.05, 1.0, 0.1):  # one bin each, 100 predictions with exactly p*100 positives
        k = int(round(p * 100))
        probs += [p] * 100
        labels += [1] * k + [0] * (100 - k)
    assert expected_calibration_error(labels, probs) == pytest.approx(0.0, abs=1e-12)
    # always saying 0.95 on a coin flip: ECE = |0.5 - 0.95|
    assert expected_calibration_error([0, 1] * 50, [0.95] * 100) == pytest.approx(0.45)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error([0, 1], [0.5, 1.5])


def test_interval_helpers():
    assert Interval(0.2, 0.1, 0.3, 10).excludes_zero
    assert Interval(-0.2, -0.3, -0.1, 10).excludes_zero
    assert not Interval(0.1, -0.1, 0.3, 10).excludes_zero
    assert Interval(0.1, -0.1, 0.3, 10).contains(0.0)
