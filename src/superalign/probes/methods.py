"""Linear probes: fit a direction on activations, score new activations along it. Pure functions on tensors.

Every method returns a :class:`Probe` (a direction ``w`` [d], a bias, and the centre/scale it was fitted in),
whose ``score(x)`` is a logit-like number, higher = the positive class (``true`` for truth probes,
``deceptive`` for deception probes), and whose ``prob(x)`` is calibrated on the training data by a
one-dimensional logistic fit (Platt scaling) for the methods that give no probability of their own.

=================  ========================================================================================
logistic           L2-regularised logistic regression (scikit-learn) on standardised activations
diff_means         difference of class means, μ₊ − μ₋ (Marks & Tegmark 2023, "mass-mean probe")
diff_means_cov     the same, corrected by the shrunk within-class covariance: Σ⁻¹(μ₊ − μ₋) (= LDA)
ccs                Contrast-Consistent Search (Burns et al. 2023): unsupervised, from contrast pairs
pca                RepE reading vector (Zou et al. 2023): first principal component of paired differences
=================  ========================================================================================

CCS and PCA find a direction without labels; its sign is then oriented with the training labels (one bit
of supervision, as both papers do to report accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from superalign.probes import METHODS


@dataclass
class Probe:
    """score(x) = ((x − centre) / scale) · w + bias; prob(x) = σ(a · score(x) + c)."""

    method: str
    w: torch.Tensor  # [d]
    bias: float
    centre: torch.Tensor  # [d]
    scale: torch.Tensor  # [d]
    platt: tuple[float, float] = (1.0, 0.0)
    negated: "Probe | None" = None  # CCS only: the same direction in the negated side's normalisation

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """[n, d] -> [n]"""
        return ((x.float() - self.centre) / self.scale) @ self.w + self.bias

    def prob(self, x: torch.Tensor) -> torch.Tensor:
        a, c = self.platt
        return torch.sigmoid(a * self.score(x) + c)


def _standardise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    centre = x.mean(0)
    scale = x.std(0).clamp_min(1e-6)
    return centre, scale


def platt(scores: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """A 1-D logistic fit of the labels on the scores (Platt 1999): turns a score into a probability."""
    from sklearn.linear_model import LogisticRegression

    if y.min() == y.max():
        return (1.0, 0.0)
    fit = LogisticRegression(C=1.0).fit(scores.numpy()[:, None].astype(np.float64), y.numpy())
    return float(fit.coef_[0, 0]), float(fit.intercept_[0])


def _orient(probe: Probe, x: torch.Tensor, y: torch.Tensor) -> Probe:
    """Flip an unsupervised direction so that the positive class scores higher on the training data."""
    s = probe.score(x)
    if y.any() and (~y.bool()).any() and s[y.bool()].mean() < s[~y.bool()].mean():
        probe.w, probe.bias = -probe.w, -probe.bias
    return probe


def fit_logistic(x: torch.Tensor, y: torch.Tensor, c: float = 0.1) -> Probe:
    """x [n, d], y [n] in {0, 1}. C is the inverse L2 strength on standardised features."""
    from sklearn.linear_model import LogisticRegression

    centre, scale = _standardise(x)
    z = ((x - centre) / scale).numpy().astype(np.float64)
    fit = LogisticRegression(C=c, max_iter=2000).fit(z, y.numpy())
    # its own probabilities are already calibrated on the training data: the identity Platt map
    return Probe("logistic", torch.tensor(fit.coef_[0], dtype=torch.float32), float(fit.intercept_[0]), centre, scale)


def fit_diff_means(x: torch.Tensor, y: torch.Tensor, covariance: bool = False, shrinkage: float = 0.1) -> Probe:
    """w = μ₊ − μ₋ (or Σ⁻¹(μ₊ − μ₋) with Σ the within-class covariance shrunk toward its diagonal mean);
    the threshold is the midpoint of the class means along w."""
    y = y.bool()
    centre, scale = x.mean(0), torch.ones(x.shape[1])
    z = x.float() - centre
    mu_pos, mu_neg = z[y].mean(0), z[~y].mean(0)
    w = mu_pos - mu_neg
    if covariance:
        within = torch.cat([z[y] - mu_pos, z[~y] - mu_neg])
        sigma = within.T @ within / max(1, within.shape[0] - 2)  # [d, d]
        target = sigma.diagonal().mean() * torch.eye(sigma.shape[0])
        w = torch.linalg.solve((1 - shrinkage) * sigma + shrinkage * target, w)
    bias = -float((mu_pos + mu_neg) @ w / 2)
    probe = Probe("diff_means_cov" if covariance else "diff_means", w, bias, centre, scale)
    probe.platt = platt(probe.score(x), y.long())
    return probe


def ccs_loss(p_pos: torch.Tensor, p_neg: torch.Tensor) -> torch.Tensor:
    """Burns et al. 2023, eq. 1–2: consistency (p(x⁺) − (1 − p(x⁻)))² + confidence min(p(x⁺), p(x⁻))², averaged."""
    consistency = (p_pos - (1 - p_neg)) ** 2
    confidence = torch.minimum(p_pos, p_neg) ** 2
    return (consistency + confidence).mean()


def fit_ccs(x_pos: torch.Tensor, x_neg: torch.Tensor, y_pos: torch.Tensor, restarts: int = 10, steps: int = 400,
            lr: float = 1e-2, seed: int = 0) -> Probe:
    """CCS on contrast pairs: x_pos [n, d] (a statement), x_neg [n, d] (its negation), y_pos [n] the truth of
    x_pos, used only to orient the sign. Each side is normalised on its own (the paper's step that removes
    the "which side of the pair" direction); the best of ``restarts`` random inits by loss is kept.

    The returned probe scores a statement *of the positive side* (p(x⁺)); :func:`ccs_credence` scores a pair.
    """
    centre_pos, scale_pos = _standardise(x_pos)
    centre_neg, scale_neg = _standardise(x_neg)
    a, b = (x_pos - centre_pos) / scale_pos, (x_neg - centre_neg) / scale_neg
    gen = torch.Generator().manual_seed(seed)
    best: tuple[float, torch.Tensor, torch.Tensor] | None = None
    for _ in range(restarts):
        w = (torch.randn(a.shape[1], generator=gen) / a.shape[1] ** 0.5).requires_grad_()
        bias = torch.zeros(1, requires_grad=True)
        opt = torch.optim.AdamW([w, bias], lr=lr, weight_decay=0.01)
        for _ in range(steps):
            opt.zero_grad()
            loss = ccs_loss(torch.sigmoid(a @ w + bias), torch.sigmoid(b @ w + bias))
            loss.backward()
            opt.step()
        if best is None or loss.item() < best[0]:
            best = (loss.item(), w.detach().clone(), bias.detach().clone())
    _, w, bias = best
    probe = Probe("ccs", w, float(bias), centre_pos, scale_pos)
    probe.negated = Probe("ccs", w, float(bias), centre_neg, scale_neg)  # p(x⁻): its negation's side
    probe = _orient(probe, x_pos, y_pos)
    probe.negated.w, probe.negated.bias = probe.w, probe.bias
    probe.platt = (1.0, 0.0)  # σ(score) is CCS's own probability
    return probe


def ccs_credence(probe: Probe, x_pos: torch.Tensor, x_neg: torch.Tensor) -> torch.Tensor:
    """The paper's pair score: ½ (p(x⁺) + 1 − p(x⁻)), the credence that the positive side is true. [n]"""
    return 0.5 * (torch.sigmoid(probe.score(x_pos)) + 1 - torch.sigmoid(probe.negated.score(x_neg)))


def fit_pca(x: torch.Tensor, y: torch.Tensor, groups: list[str] | None = None, seed: int = 0) -> Probe:
    """RepE reading vector: the first principal component of differences between activations of opposite
    labels, paired within ``groups`` (e.g. the same fact) when given, else at random; each difference's
    sign is flipped at random (as the paper does) so the component is not the mean difference by fiat."""
    rng = np.random.default_rng(seed)
    y = y.bool()
    pos, neg = np.flatnonzero(y.numpy()), np.flatnonzero(~y.numpy())
    if groups is not None:
        by_group: dict[str, tuple[list[int], list[int]]] = {}
        for i, g in enumerate(groups):
            by_group.setdefault(g, ([], []))[0 if y[i] else 1].append(i)
        pairs = [(p, n) for ps, ns in by_group.values() for p, n in zip(ps, ns)]
    else:
        m = min(len(pos), len(neg))
        pairs = list(zip(rng.permutation(pos)[:m], rng.permutation(neg)[:m]))
    if not pairs:
        raise ValueError("the PCA reading vector needs pairs of opposite labels")
    centre, scale = _standardise(x)
    z = (x - centre) / scale
    diffs = torch.stack([z[p] - z[n] for p, n in pairs])  # [m, d]
    diffs = diffs * torch.from_numpy(rng.choice([-1.0, 1.0], size=len(pairs))).float()[:, None]
    _, _, v = torch.linalg.svd(diffs - diffs.mean(0), full_matrices=False)
    probe = _orient(Probe("pca", v[0], 0.0, centre, scale), x, y.long())
    s = probe.score(x)
    probe.bias = -float((s[y].mean() + s[~y].mean()) / 2)
    probe.platt = platt(probe.score(x), y.long())
    return probe


def fit(method: str, x: torch.Tensor, y: torch.Tensor, *, x_neg: torch.Tensor | None = None,
        groups: list[str] | None = None, seed: int = 0) -> Probe:
    """Fit ``method`` on x [n, d] with labels y [n]. CCS needs ``x_neg`` (the contrast side of each row)."""
    if method == "logistic":
        return fit_logistic(x, y)
    if method in ("diff_means", "diff_means_cov"):
        return fit_diff_means(x, y, covariance=method == "diff_means_cov")
    if method == "ccs":
        if x_neg is None:
            raise ValueError("CCS needs contrast pairs (x_neg)")
        return fit_ccs(x, x_neg, y, seed=seed)
    if method == "pca":
        return fit_pca(x, y, groups, seed=seed)
    raise ValueError(f"unknown probe method {method!r}: one of {', '.join(METHODS)}")


__all__ = ["METHODS", "Probe", "ccs_credence", "platt", "ccs_loss", "fit", "fit_ccs", "fit_diff_means", "fit_logistic",
           "fit_pca"]
