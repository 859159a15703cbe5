"""Studio quality numbers: Cohen's kappa, Krippendorff's alpha, gold correctness, per-labeler stats."""

from __future__ import annotations

import math

import pytest

from superalign.studio.quality import (LabelRow, campaign_quality, cohen_kappa, diff_ci, is_correct,
                                       krippendorff_alpha)


def test_cohen_kappa_matches_the_textbook_example():
    # Wikipedia's example: 50 items, yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> p_o = 0.7, p_e = 0.5, kappa = 0.4.
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_cohen_kappa_edges():
    assert cohen_kappa(["A", "B", "A"], ["A", "B", "A"]) == pytest.approx(1.0)
    assert cohen_kappa(["A", "B"], ["B", "A"]) == pytest.approx(-1.0)
    assert math.isnan(cohen_kappa(["A", "A"], ["A", "A"]))  # no variation: undefined, not "perfect"
    assert math.isnan(cohen_kappa([], []))
    with pytest.raises(ValueError, match="same items"):
        cohen_kappa(["A"], ["A", "B"])


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4 coders x 12 units example with
# missing values; published: nominal alpha = 0.743, interval alpha = 0.849.
_K = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}


def _units():
    return {u: [c[u] for c in _K.values() if c[u] is not None] for u in range(12)}


def test_krippendorff_alpha_matches_the_published_example():
    assert krippendorff_alpha(_units(), "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(_units(), "interval") == pytest.approx(0.849, abs=5e-4)


def test_krippendorff_alpha_edges():
    assert krippendorff_alpha({1: ["A", "A"], 2: ["B", "B"]}) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha({1: ["A", "A"], 2: ["A", "A"]}))  # no expected disagreement
    assert math.isnan(krippendorff_alpha({1: ["A"], 2: ["B"]}))  # nothing pairable
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha({1: [1, 2]}, "ordinalish")


@pytest.mark.parametrize("task, answer, truth, expected", [
    ("pairwise", {"choice": "A"}, {"choice": "A"}, True),
    ("pairwise", {"choice": "tie"}, {"choice": "A"}, False),
    ("rating", {"rating": 5}, {"rating": 6, "tolerance": 1}, True),
    ("rating", {"rating": 4}, {"rating": 6, "tolerance": 1}, False),
    ("rating", {"rating": 6}, {"rating": 6}, True),
    ("flaw", {"flaws": []}, {"flawed": False}, True),
    ("flaw", {"flaws": []}, {"flawed": True}, False),
    ("flaw", {"flaws": [{"start": 3, "end": 8}]}, {"flawed": True, "spans": [[5, 12]]}, True),
    ("flaw", {"flaws": [{"start": 0, "end": 5}]}, {"flawed": True, "spans": [[5, 12]]}, False),  # touching only
    ("pairwise", {"choice": "A"}, None, None),
])
def test_is_correct(task, answer, truth, expected):
    assert is_correct(task, answer, truth) is expected


def _row(labeler, item, choice, truth=None, gold=False, assisted=False, has=False, seconds=10.0):
    return LabelRow(labeler=labeler, item=item, answer={"choice": choice}, truth=truth, gold=gold,
                    has_assistance=has, assisted=assisted, served_at=100.0, created_at=100.0 + seconds)


def test_campaign_quality_per_labeler_agreement_and_assistance():
    rows = [
        _row("ann", 1, "A", {"choice": "A"}, gold=True, seconds=4),
        _row("bob", 1, "B", {"choice": "A"}, gold=True, seconds=8),
        _row("ann", 2, "A"), _row("bob", 2, "A"),
        _row("ann", 3, "B"), _row("bob", 3, "B"),
        _row("ann", 4, "A", {"choice": "A"}, has=True, assisted=True),
        _row("ann", 5, "A", {"choice": "B"}, has=True, assisted=False),
        _row("bob", 6, "B", {"choice": "B"}, has=True, assisted=True),
    ]
    q = campaign_quality("pairwise", rows, labelers=["ann", "bob", "cy"])
    by = {lq.name: lq for lq in q.labelers}
    assert by["ann"].gold_accuracy.value == 1.0 and by["bob"].gold_accuracy.value == 0.0
    assert by["ann"].labels == 5 and by["bob"].labels == 4 and by["cy"].labels == 0  # invited, no labels yet
    assert by["cy"].gold_accuracy is None and by["cy"].median_seconds is None
    assert by["ann"].median_seconds == pytest.approx(10.0)
    assert by["bob"].labels_per_hour == pytest.approx(4 / (8 + 10 + 10 + 10) * 3600)
    assert q.overlap_items == 3 and q.kappa_pairs == 1
    # items 1..3: (A,B), (A,A), (B,B): p_o = 2/3; p_e = (2/3)(1/3) + (1/3)(2/3) = 4/9 -> kappa = 0.4
    assert q.kappa == pytest.approx(0.4)
    assert q.accuracy_assisted.value == 1.0 and q.accuracy_assisted.n == 2
    assert q.accuracy_unassisted.value == 0.0 and q.assistance_gain.value == pytest.approx(1.0)
    assert q.answers == {"A": 5, "B": 4}


def test_rating_agreement_is_interval_alpha_without_kappa():
    rows = [LabelRow("a", i, {"rating": r}, None, False, False, False, 0.0, 1.0) for i, r in enumerate([1, 4, 7])]
    rows += [LabelRow("b", i, {"rating": r}, None, False, False, False, 0.0, 1.0) for i, r in enumerate([2, 4, 6])]
    q = campaign_quality("rating", rows)
    assert q.alpha_level == "interval" and 0.8 < q.alpha < 1.0
    assert q.kappa_pairs == 0 and math.isnan(q.kappa)


def test_diff_ci_brackets_the_difference_and_needs_both_groups():
    iv = diff_ci([1, 1, 1, 0] * 10, [0, 0, 1, 0] * 10)
    assert iv.value == pytest.approx(0.5) and iv.low < 0.5 < iv.high and iv.low > 0
    assert diff_ci([1, 0], []) is None


def test_one_gold_label_shows_its_n_not_a_certain_interval():
    from superalign.stats import Interval
    from superalign.studio.web import _templates

    show = _templates().filters["interval"]
    assert show(Interval(1.0, 1.0, 1.0, 1)) == "1.00 (n=1: no interval)"  # not "1.00 [1.00, 1.00]"
    assert show(Interval(0.75, 0.5, 1.0, 4)) == "0.75 [0.50, 1.00]"
