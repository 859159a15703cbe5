import math

import numpy as np
import pytest

from superalign.records import OptimizationPoint
from superalign.rlhf.overoptimization import fit_best_of_n, fit_points, fit_rl, peak


def test_best_of_n_fit_recovers_exact_coefficients():
    d = np.linspace(0, 2.5, 12)
    fit = fit_best_of_n(d, d * (0.8 - 0.3 * d))
    assert fit.alpha == pytest.approx(0.8, abs=1e-10)
    assert fit.beta == pytest.approx(0.3, abs=1e-10)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.d_peak == pytest.approx(0.8 / 0.6)
    assert fit.form == "best_of_n"


def test_rl_fit_recovers_exact_coefficients():
    d = np.linspace(0, 6, 15)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(d > 0, d * (0.5 - 0.2 * np.log(np.where(d > 0, d, 1))), 0.0)
    fit = fit_rl(d, gain)
    assert fit.alpha == pytest.approx(0.5, abs=1e-10)
    assert fit.beta == pytest.approx(0.2, abs=1e-10)
    assert fit.d_peak == pytest.approx(math.exp(0.5 / 0.2 - 1))
    assert fit.predict([fit.d_peak])[0] == pytest.approx(max(gain), rel=0.05)


def test_fits_are_close_on_noisy_curves():
    rng = np.random.default_rng(0)
    d = np.linspace(0.05, 3, 60)
    bon = fit_best_of_n(d, d * (0.8 - 0.3 * d) + rng.normal(scale=0.02, size=d.size))
    assert bon.alpha == pytest.approx(0.8, abs=0.05) and bon.beta == pytest.approx(0.3, abs=0.03)
    assert bon.r2 > 0.9
    rl = fit_rl(d, d * (0.5 - 0.2 * np.log(d)) + rng.normal(scale=0.02, size=d.size))
    assert rl.alpha == pytest.approx(0.5, abs=0.05) and rl.beta == pytest.approx(0.2, abs=0.05)


def test_no_peak_when_gold_keeps_rising_and_bad_input():
    d = np.array([0.0, 0.5, 1.0, 1.5])
    assert fit_best_of_n(d, 0.4 * d).d_peak is None
    with pytest.raises(ValueError, match="two points"):
        fit_best_of_n([0.0, 1.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="negative"):
        fit_rl([-1.0, 1.0, 2.0], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        fit_rl([0.5, 1.0, 2.0], [0.0, float("nan"), 2.0])


def _points(golds, proxies, method="ppo"):
    return [OptimizationPoint(method=method, step=i, kl=float(i) ** 2 / 4, gold=g, proxy=p)
            for i, (g, p) in enumerate(zip(golds, proxies))]


def test_peak_detects_overoptimization():
    info = peak(_points([0.2, 0.4, 0.5, 0.45, 0.3], [0.0, 1.0, 2.0, 3.0, 4.0]))
    assert info["step"] == 2 and info["gold"] == 0.5 and info["d"] == pytest.approx(1.0)
    assert info["gold_drop"] == pytest.approx(0.2) and info["proxy_rise"] == pytest.approx(2.0)
    assert info["overoptimized"] is True
    rising = peak(_points([0.2, 0.3, 0.4], [0.0, 1.0, 2.0]))
    assert rising["step"] == 2 and rising["overoptimized"] is False
    assert info["drop_clear"] is None  # no intervals: no verdict on noise


def test_a_drop_inside_the_points_noise_is_not_called_clear():
    def with_intervals(points, half_widths):
        return [p.model_copy(update={"gold_ci_low": p.gold - w, "gold_ci_high": p.gold + w})
                for p, w in zip(points, half_widths)]

    points = _points([0.2, 0.5, 0.3], [0.0, 1.0, 2.0])
    noisy = peak(with_intervals(points, (0.05, 0.05, 0.25)))  # peak [0.45, 0.55], last [0.05, 0.55]
    assert noisy["overoptimized"] is True and noisy["drop_clear"] is False
    assert peak(with_intervals(points, (0.05, 0.05, 0.1)))["drop_clear"] is True  # last [0.2, 0.4]


def test_fit_points_uses_sqrt_kl_and_gain_over_start():
    d = np.linspace(0, 2, 8)
    points = [OptimizationPoint(method="best_of_n", step=i + 1, kl=float(x * x), gold=0.3 + x * (0.6 - 0.2 * x),
                                proxy=0.0) for i, x in enumerate(d)]
    fit = fit_points(points)
    assert fit.form == "best_of_n"
    assert fit.alpha == pytest.approx(0.6) and fit.beta == pytest.approx(0.2)


def test_best_of_n_fit_that_only_falls_peaks_at_the_start():
    d = np.linspace(0.0, 1.0, 6)
    fit = fit_best_of_n(d, d * (-0.1 - 0.05 * d))
    assert fit.alpha == pytest.approx(-0.1) and fit.beta == pytest.approx(0.05)
    assert fit.d_peak == 0.0  # not the negative root α / 2β
