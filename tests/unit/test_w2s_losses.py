"""The weak-to-strong losses against hand computation (Burns et al. 2023, eq. 1)."""

from __future__ import annotations

import math

import pytest
import torch

from superalign.weak_to_strong.losses import (
    alpha_schedule,
    batch_threshold,
    confidence_loss,
    harden,
    soft_cross_entropy,
)


def _ce(p: float, q: float) -> float:
    return -(q * math.log(p) + (1 - q) * math.log(1 - p))


def test_soft_cross_entropy_matches_the_formula():
    logits = torch.tensor([0.0, 2.0, -1.0])
    q = torch.tensor([0.5, 0.9, 0.2])
    p = torch.sigmoid(logits).tolist()
    expected = sum(_ce(pi, qi) for pi, qi in zip(p, q.tolist())) / 3
    assert soft_cross_entropy(logits, q).item() == pytest.approx(expected, rel=1e-6)


def test_confidence_loss_on_a_hand_computed_batch():
    # Four examples; the weak labels' positive rate is mean([0.9, 0.8, 0.3, 0.2]) = 0.55, so the threshold
    # is the 45% quantile of the strong probabilities; the 2 most confident predictions lie above it ->
    # hard = [1, 0, 1, 0], the strong model's own ranking, which disagrees with the weak labels on examples 1, 2.
    logits = torch.tensor([1.0, 0.5, 2.0, -1.0])  # p = 0.731, 0.622, 0.881, 0.269
    weak = torch.tensor([0.9, 0.8, 0.3, 0.2])
    p = torch.sigmoid(logits).tolist()
    t = batch_threshold(torch.sigmoid(logits), 0.55).item()
    hard = [float(pi > t) for pi in p]
    assert hard == [1.0, 0.0, 1.0, 0.0]  # the two most confident predictions, whatever the weak labels say
    alpha = 0.5
    expected = sum((1 - alpha) * _ce(pi, qi) + alpha * _ce(pi, hi) for pi, qi, hi in zip(p, weak.tolist(), hard)) / 4
    assert confidence_loss(logits, weak, alpha).item() == pytest.approx(expected, rel=1e-6)


def test_confidence_loss_with_alpha_zero_is_the_naive_loss():
    logits, weak = torch.randn(16, generator=torch.Generator().manual_seed(0)), torch.rand(16)
    assert confidence_loss(logits, weak, 0.0).item() == pytest.approx(soft_cross_entropy(logits, weak).item())


def test_hardened_targets_carry_no_gradient():
    logits = torch.tensor([0.3, -0.2, 1.5, -2.0], requires_grad=True)
    weak = torch.tensor([1.0, 0.0, 1.0, 0.0])
    confidence_loss(logits, weak, 1.0).backward()
    # With α = 1 the loss is CE(σ(z), hard): its gradient is σ(z) − hard, divided by the batch size.
    hard = harden(torch.sigmoid(logits.detach()), 0.5)
    assert torch.allclose(logits.grad, (torch.sigmoid(logits.detach()) - hard) / 4, atol=1e-6)


@pytest.mark.parametrize("rate", [0.1, 0.25, 0.5, 0.7, 0.9])
def test_threshold_matches_the_weak_positive_rate(rate):
    probs = torch.rand(200, generator=torch.Generator().manual_seed(1))
    hard = harden(probs, rate)
    assert abs(hard.mean().item() - rate) <= 1 / 200 + 1e-9


def test_threshold_extremes():
    probs = torch.tensor([0.1, 0.4, 0.6, 0.9])
    assert harden(probs, 0.0).sum().item() == 0  # no weak positives -> no hardened positives
    assert harden(probs, 1.0).sum().item() == 3  # everything above the minimum


def test_alpha_warms_up_linearly_then_stays():
    assert alpha_schedule(0.0, 0.75, 0.2) == 0.0
    assert alpha_schedule(0.1, 0.75, 0.2) == pytest.approx(0.375)
    assert alpha_schedule(0.2, 0.75, 0.2) == pytest.approx(0.75)
    assert alpha_schedule(0.9, 0.75, 0.2) == pytest.approx(0.75)
    assert alpha_schedule(0.05, 0.5, 0.0) == 0.5  # no warm-up
