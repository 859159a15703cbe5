import itertools
import math

import numpy as np
import pytest

from superalign.rlhf.best_of_n import (
    best_of_n_curve,
    best_of_n_kl,
    best_of_n_weights,
    select_best,
    unbiased_best_of_n,
)


def brute_force(proxy, gold, n):
    """Average, over every n-subset of the samples, the proxy and gold of the subset's proxy-argmax."""
    golds, proxies = [], []
    for subset in itertools.combinations(range(len(proxy)), n):
        best = max(subset, key=lambda i: proxy[i])
        golds.append(gold[best])
        proxies.append(proxy[best])
    return np.mean(proxies), np.mean(golds)


def test_kl_known_values():
    assert best_of_n_kl(1) == 0.0
    assert best_of_n_kl(2) == pytest.approx(math.log(2) - 0.5)
    assert best_of_n_kl(4) == pytest.approx(math.log(4) - 0.75)
    assert best_of_n_kl(64) == pytest.approx(4.158883 - 0.984375, abs=1e-6)  # log 64 − 63/64
    with pytest.raises(ValueError):
        best_of_n_kl(0)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8])
def test_unbiased_estimator_equals_brute_force(n):
    rng = np.random.default_rng(n)
    proxy, gold = rng.normal(size=8), rng.normal(size=8)
    want_proxy, want_gold = brute_force(proxy, gold, n)
    got = unbiased_best_of_n(proxy, gold, n)
    assert got.gold == pytest.approx(want_gold, abs=1e-12)
    assert got.proxy == pytest.approx(want_proxy, abs=1e-12)


def test_estimator_edge_cases():
    proxy, gold = np.array([0.3, 0.1, 0.9]), np.array([1.0, 2.0, 3.0])
    assert unbiased_best_of_n(proxy, gold, 1).gold == pytest.approx(gold.mean())  # n = 1: the policy itself
    assert unbiased_best_of_n(proxy, gold, 3).gold == 3.0  # n = N: the argmax
    # Tied proxies: random tie-breaking in expectation, gold averaged over the tie.
    assert unbiased_best_of_n([1.0, 1.0, 0.0], [0.0, 1.0, 5.0], 3).gold == pytest.approx(0.5)
    assert best_of_n_weights(10, 4).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="n <= N"):
        unbiased_best_of_n(proxy, gold, 4)


def test_curve_points_and_interval():
    rng = np.random.default_rng(0)
    proxy = rng.normal(size=(6, 8))
    gold = proxy + rng.normal(scale=0.5, size=(6, 8))
    points = best_of_n_curve(proxy, gold, [1, 2, 4, 8], n_boot=200)
    assert [p.step for p in points] == [1, 2, 4, 8]
    assert points[0].kl == 0.0 and points[2].kl == pytest.approx(best_of_n_kl(4))
    assert points[0].gold == pytest.approx(gold.mean())
    assert points[-1].gold == pytest.approx(gold[np.arange(6), proxy.argmax(1)].mean())
    proxies = [p.proxy for p in points]
    assert proxies == sorted(proxies)  # the proxy of the selected sample can only rise with n
    for p in points:
        assert p.gold_ci_low <= p.gold <= p.gold_ci_high
        assert p.method == "best_of_n"


def test_select_best():
    responses = [["a", "b", "c"], ["x", "y"]]
    assert select_best(responses, [[0.1, 0.5, 0.2], [3.0, 3.0]]) == ["b", "x"]
    assert select_best(responses[:1], np.array([[0.0, -1.0, 2.0]])) == ["c"]
    with pytest.raises(ValueError):
        select_best(responses, [[0.1, 0.5], [1.0, 2.0]])
