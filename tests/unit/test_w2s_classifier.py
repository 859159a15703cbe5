"""Classifiers: probes and fine-tuned heads learn, pairs are antisymmetric, early stopping keeps the best epoch."""

from __future__ import annotations

import numpy as np
import torch

from superalign.models import load
from superalign.weak_to_strong import TrainSettings
from superalign.weak_to_strong.classifier import (
    FinetuneClassifier,
    Objective,
    ProbeClassifier,
    fit_loop,
)
from superalign.world.vault import Example


def _examples(n: int) -> list[Example]:
    return [Example(f"e{i}", (f"t{i}",), f"g{i}") for i in range(n)]


def test_probe_learns_a_planted_direction():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 6, generator=g)
    y = (x[:, 2] > 0).float().numpy()
    ex = _examples(400)
    feats = {e.id: x[i] for i, e in enumerate(ex)}
    clf = ProbeClassifier(lambda es: torch.stack([feats[e.id] for e in es]), False, TrainSettings(lr=0.1, epochs=30))
    report = clf.fit(ex[:300], y[:300], Objective("ce"), seed=0)
    acc = ((clf.predict(ex[300:]) > 0.5) == y[300:].astype(bool)).mean()
    assert acc > 0.9 and report.train_loss[-1] < report.train_loss[0]
    assert 1 <= report.best_epoch <= report.epochs


def test_pairwise_probe_is_antisymmetric():
    g = torch.Generator().manual_seed(1)
    f = {f"t{i}": torch.randn(4, generator=g) for i in range(40)}
    pairs = [Example(f"p{i}", (f"t{i}", f"t{(i + 1) % 40}"), f"g{i}") for i in range(40)]
    swapped = [Example(e.id, e.texts[::-1], e.group) for e in pairs]

    def featurize(es):
        return torch.stack([f[e.texts[0]] - f[e.texts[1]] for e in es])

    clf = ProbeClassifier(featurize, True, TrainSettings(epochs=5))
    clf.fit(pairs, np.array([float(f[e.texts[0]][0] > f[e.texts[1]][0]) for e in pairs]), Objective("ce"), seed=0)
    assert np.allclose(clf.predict(pairs), 1 - clf.predict(swapped), atol=1e-6)


def test_early_stopping_restores_the_best_epoch():
    w = torch.nn.Parameter(torch.zeros(1))
    targets = torch.full((20,), 1.0)
    val_losses = iter([0.5, 0.3, 0.4, 0.6, 0.7, 0.8])
    history = []

    class Scripted(Objective):
        def validation_loss(self, logits, t):
            return next(val_losses)

    def get_state():
        history.append(w.item())
        return {"w": w.detach().clone()}

    report = fit_loop([{"params": [w], "lr": 0.1}], lambda idx, train: w.expand(len(idx)), 20, targets,
                      Scripted("ce"), TrainSettings(epochs=6, patience=2, batch_size=4, val_fraction=0.5), 0,
                      get_state, lambda s: w.data.copy_(s["w"]))
    assert report.best_epoch == 2 and report.epochs == 4  # stopped after two epochs without improvement
    assert w.item() == history[-1]  # the weights of epoch 2, not of the last epoch


def test_early_stopping_waits_for_the_confidence_warm_up():
    """The best validation loss falls in the warm-up (α still ramping): that epoch may not be kept."""
    w = torch.nn.Parameter(torch.zeros(1))
    val_losses = iter([0.1, 0.5, 0.6, 0.4, 0.7, 0.8, 0.9, 0.9, 0.9, 0.9])

    class Scripted(Objective):
        def validation_loss(self, logits, t):
            return next(val_losses)

    report = fit_loop([{"params": [w], "lr": 0.1}], lambda idx, train: w.expand(len(idx)), 20, torch.full((20,), 1.0),
                      Scripted("confidence", alpha_max=0.5, warmup_frac=0.3),
                      TrainSettings(epochs=10, patience=2, batch_size=4, val_fraction=0.5), 0,
                      lambda: {"w": w.detach().clone()}, lambda s: w.data.copy_(s["w"]))
    # epochs 1-2 end before 30% of training; epoch 4 is the best after it, and patience counts from there
    assert report.best_epoch == 4 and report.epochs == 6
    assert report.alpha[0] < 0.5 and report.kept_alpha == 0.5


def test_confidence_loss_reaches_its_weight_in_a_real_fit(monkeypatch):
    """A probe trained on noisy weak labels: every α the loss is called with is recorded; α must reach α_max
    during training and the kept epoch must have been trained at it (catches a weight frozen at 0)."""
    from superalign.weak_to_strong import classifier

    seen = []
    real = classifier.confidence_loss
    monkeypatch.setattr(classifier, "confidence_loss", lambda z, q, a: seen.append(a) or real(z, q, a))
    g = torch.Generator().manual_seed(3)
    x = torch.randn(200, 8, generator=g)
    noisy = ((x[:, 0] + 1.5 * torch.randn(200, generator=g)) > 0).float()  # weak labels: 25-30% wrong
    soft = (0.25 + 0.5 * noisy).numpy()
    ex = _examples(200)
    feats = {e.id: x[i] for i, e in enumerate(ex)}
    clf = ProbeClassifier(lambda es: torch.stack([feats[e.id] for e in es]), False,
                          TrainSettings(lr=0.05, epochs=40, patience=3))
    report = clf.fit(ex, soft, Objective("confidence", alpha_max=0.5, warmup_frac=0.2), seed=0)
    assert seen and seen[0] < 0.05 and max(seen) == 0.5
    assert report.kept_alpha == 0.5 and report.best_epoch >= 8  # 20% of 40 epochs


def _toy_text_task():
    texts = [("the answer is yes " * 2, 1.0), ("the answer is no " * 2, 0.0)] * 12
    ex = [Example(f"e{i}", (t,), f"g{i}") for i, (t, _) in enumerate(texts)]
    return ex, np.array([y for _, y in texts])


def test_full_finetuning_changes_the_backbone_and_fits_the_labels():
    ex, y = _toy_text_task()
    before = {n: p.detach().clone() for n, p in load("tiny-llama").model.base_model.named_parameters()}
    clf = FinetuneClassifier(lambda: load("tiny-llama"), False, TrainSettings(epochs=6, lr=1e-2, finetune_lr=1e-3,
                                                                               batch_size=8, val_fraction=0.0),
                             "full", None, "auto", 32)
    report = clf.fit(ex, y, Objective("ce"), seed=0)
    assert report.train_loss[-1] < report.train_loss[0]
    assert ((clf.predict(ex) > 0.5) == y.astype(bool)).mean() == 1.0
    changed = [n for n, p in clf.backbone.named_parameters() if not torch.equal(p, before[n])]
    assert changed  # the backbone itself was trained


def test_lora_trains_only_adapters():
    ex, y = _toy_text_task()
    clf = FinetuneClassifier(lambda: load("tiny-llama"), False, TrainSettings(epochs=2, batch_size=8, val_fraction=0.0),
                             "lora", None, "auto", 32)
    clf.fit(ex, y, Objective("ce"), seed=0)
    trainable = [n for n, p in clf.backbone.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
