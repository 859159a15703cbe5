"""The losses of weak-to-strong training (Burns et al. 2023, "Weak-to-Strong Generalization", §4.3).

Binary classification with one logit ``z`` per example, ``p = σ(z) = P(label = 1)``. Soft labels are
the weak supervisor's probabilities. Everything is a short pure function of tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean CE(σ(z), q) = −q·log σ(z) − (1 − q)·log(1 − σ(z)) over the batch; ``targets`` q ∈ [0, 1].

    Training on the weak model's soft labels with this loss is the paper's "naive" baseline (§4.1).
    With 0/1 targets it is the usual ground-truth loss of the weak model and the strong ceiling.
    """
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float())


def batch_threshold(probs: torch.Tensor, positive_rate: float) -> torch.Tensor:
    """Threshold t with ``mean(probs > t) ≈ positive_rate``: the (1 − rate) quantile of the batch.

    Burns et al. set t per batch so that the hardened strong predictions have the weak labels' positive
    rate (official code: ``torch.quantile(P(class 0), mean weak P(class 1))``, which is the same cut).
    """
    rate = float(min(max(positive_rate, 0.0), 1.0))
    return torch.quantile(probs.detach().float(), 1.0 - rate)


def harden(probs: torch.Tensor, positive_rate: float) -> torch.Tensor:
    """Hard labels ``1[p > t]`` of the strong model's own predictions, t from :func:`batch_threshold`."""
    return (probs.detach().float() > batch_threshold(probs, positive_rate)).float()


def alpha_schedule(step_frac: float, alpha_max: float, warmup_frac: float) -> float:
    """α rises linearly from 0 to ``alpha_max`` over the first ``warmup_frac`` of training, then stays.

    Burns et al. (App. A.4): α_max = 0.75 for the largest students, 0.5 otherwise, warmed up over the
    first 20% of training. (The released code's warm-up, ``coef = step_frac`` until ``warmup_frac``
    and then 1, jumps at the end of the warm-up; this is the linear ramp the paper describes.)
    """
    if warmup_frac <= 0:
        return float(alpha_max)
    return float(alpha_max) * min(1.0, max(0.0, step_frac) / warmup_frac)


def confidence_loss(logits: torch.Tensor, weak_probs: torch.Tensor, alpha: float) -> torch.Tensor:
    """Auxiliary confidence loss, Burns et al. eq. (1):

        L_conf = (1 − α)·CE(f(x), f_w(x)) + α·CE(f(x), f̂_t(x))

    where f̂_t(x) = 1[f(x) > t] hardens the strong model's own prediction with the per-batch threshold
    t that matches the weak labels' positive rate. The hardened target is a constant (no gradient flows
    through the threshold), so the term rewards the strong model for being confident in its own
    predictions even where they disagree with the weak supervisor.
    """
    probs = torch.sigmoid(logits.detach().float())
    hard = harden(probs, float(weak_probs.float().mean()))
    return (1.0 - alpha) * soft_cross_entropy(logits, weak_probs) + alpha * soft_cross_entropy(logits, hard)
