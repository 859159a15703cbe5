"""Binary classifiers on a backbone, trained on hard or soft labels with early stopping.

Two ways to train, one interface (``fit(examples, targets, ...)``, ``predict(examples) -> P(label=1)``):

- :class:`ProbeClassifier` (the fast mode): a linear head on frozen, cached features (last
  non-padding token of a decoder, mean-pooled encoder output). Burns et al. (2023, App. D) find
  that linear probes on frozen features show the same qualitative weak-to-strong trends.
- :class:`FinetuneClassifier`: the head plus the backbone, trained fully or through LoRA adapters,
  as in the paper's main experiments.

A pairwise example (two texts) gets the logit ``r(A) − r(B)``: a Bradley-Terry reward model whose
preference probability is σ(r(A) − r(B)); the probe reads ``w·(f(A) − f(B))`` with no bias, so
swapping A and B flips the prediction.

Early stopping uses only the validation targets it is given - ground truth for the weak model and
the ceiling, weak (or bootstrapped) labels for a student - so a student never sees the truth.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from superalign.weak_to_strong import TrainSettings
from superalign.models import activations as Fe
from superalign.models.backbone import backbone_of, pool_hidden
from superalign.models.generation import pad_id, right_pad
from superalign.weak_to_strong.losses import alpha_schedule, confidence_loss, soft_cross_entropy
from superalign.world.vault import Example


@dataclass(frozen=True)
class Objective:
    """What a classifier minimizes: cross-entropy on its targets, or the auxiliary confidence loss."""

    kind: Literal["ce", "confidence"] = "ce"
    alpha_max: float = 0.75
    warmup_frac: float = 0.2

    def alpha(self, step_frac: float) -> float | None:
        """The confidence term's weight α at ``step_frac`` of training (None for plain cross-entropy)."""
        return None if self.kind == "ce" else alpha_schedule(step_frac, self.alpha_max, self.warmup_frac)

    def warmed_up(self, step_frac: float) -> bool:
        """Whether α has reached α_max: before that, early stopping may not keep (or give up on) an epoch."""
        return self.kind == "ce" or step_frac >= self.warmup_frac

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, step_frac: float) -> torch.Tensor:
        if self.kind == "ce":
            return soft_cross_entropy(logits, targets)
        return confidence_loss(logits, targets, self.alpha(step_frac))

    def validation_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        """The objective at the end of training (α = α_max), on the whole validation set."""
        return float(self.loss(logits, targets, step_frac=1.0))


@dataclass
class FitReport:
    """How a fit went: epochs run, the epoch whose weights were kept, the loss curves and (confidence loss)
    the weight α at the end of each epoch."""

    epochs: int = 0
    best_epoch: int = 0
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    alpha: list[float] = field(default_factory=list)  # α of each epoch's last step; empty for cross-entropy

    @property
    def kept_alpha(self) -> float | None:
        """α at the end of the kept epoch: the weight the kept weights were trained at (None without α)."""
        return self.alpha[self.best_epoch - 1] if self.alpha and self.best_epoch else None


def _holdout(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = int(round(fraction * n)) if n >= 10 else 0
    return order[k:], order[:k]


def fit_loop(params: list[dict], forward: Callable[[list[int], bool], torch.Tensor], n: int, targets: torch.Tensor,
             objective: Objective, settings: TrainSettings, seed: int, get_state: Callable[[], dict],
             set_state: Callable[[dict], None], penalty: Callable[[], torch.Tensor] | None = None) -> FitReport:
    """Minibatch Adam on ``objective`` with early stopping on a held-out share of the *given* targets.

    ``forward(indices, train) -> logits [len(indices)]``; ``penalty()`` (e.g. an L2 term) is added to each
    training step's loss, not to the validation loss. Keeps the weights of the epoch with the lowest
    validation loss (or the last epoch when nothing is held out) among the epochs that end after the
    objective's warm-up: a confidence loss whose α is still ramping is not the objective asked for, so
    those epochs are neither kept nor counted towards patience (early stopping once kept an epoch at
    α = 0.17 of 0.5).
    """
    train_idx, val_idx = _holdout(n, settings.val_fraction, seed)
    optimizer = torch.optim.Adam(params)
    steps_per_epoch = math.ceil(len(train_idx) / settings.batch_size)
    total = steps_per_epoch * settings.epochs
    # Cosine annealing of the learning rate, as in the paper's released code ("cosine_anneal").
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    rng = random.Random(seed)
    report, best, best_loss, stale, step = FitReport(), None, math.inf, 0, 0
    for epoch in range(settings.epochs):
        order = list(train_idx)
        rng.shuffle(order)
        losses = []
        for start in range(0, len(order), settings.batch_size):
            idx = order[start : start + settings.batch_size]
            if len(idx) < 2:  # a batch threshold needs more than one example
                continue
            loss = objective.loss(forward(idx, True), targets[idx], step / max(1, total))
            if penalty is not None:
                loss = loss + penalty()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            losses.append(loss.item())
        report.epochs = epoch + 1
        report.train_loss.append(float(np.mean(losses)) if losses else math.nan)
        frac = step / max(1, total)
        if objective.alpha(frac) is not None:
            report.alpha.append(objective.alpha(frac))
        if not val_idx:
            continue
        with torch.no_grad():
            val = objective.validation_loss(forward(val_idx, False), targets[val_idx])
        report.val_loss.append(val)
        if not objective.warmed_up(frac):
            continue
        if val < best_loss - 1e-6:
            best_loss, best, stale, report.best_epoch = val, get_state(), 0, epoch + 1
        else:
            stale += 1
            if settings.patience and stale >= settings.patience:
                break
    if best is not None:
        set_state(best)
    else:
        report.best_epoch = report.epochs
    return report


# --- the fast mode: a linear probe on frozen features ----------------------------------------------


@contextlib.contextmanager
def one_thread():
    """Run tiny tensor ops on one thread: a probe step is microseconds of math, and waking a second
    thread costs more than that (measured: 10 ms per loss call on the shared 2-core machine vs 0.01 ms)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ProbeClassifier:
    """A linear head on frozen features. ``featurize(examples) -> [n, d]`` (pairs: f(A) − f(B))."""

    def __init__(self, featurize: Callable[[list[Example]], torch.Tensor], pairwise: bool, settings: TrainSettings):
        self.featurize = featurize
        self.pairwise = pairwise
        self.settings = settings
        self.head: nn.Linear | None = None
        self.mean: torch.Tensor | None = None
        self.scale: torch.Tensor | None = None

    def _standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale

    def fit(self, examples: list[Example], targets: np.ndarray, objective: Objective, seed: int) -> FitReport:
        """Train on ``targets`` (0/1 truth or soft labels in [0, 1]) for ``examples``."""
        x = self.featurize(examples)  # [n, d]
        # Statistics of the inputs only (no labels). Pairs are not centred: f(A) − f(B) must stay odd.
        self.mean = torch.zeros(x.shape[1]) if self.pairwise else x.mean(0)
        self.scale = (x.pow(2).mean(0).sqrt() if self.pairwise else x.std(0)).clamp(min=1e-6)
        xs = self._standardize(x)
        gen = torch.Generator().manual_seed(seed)
        self.head = nn.Linear(x.shape[1], 1, bias=not self.pairwise)
        with torch.no_grad():
            self.head.weight.copy_(0.01 * torch.randn(self.head.weight.shape, generator=gen))
            if self.head.bias is not None:
                self.head.bias.zero_()
        y = torch.as_tensor(np.asarray(targets, dtype=np.float32))
        head, l2 = self.head, self.settings.l2
        params = [{"params": list(head.parameters()), "lr": self.settings.lr}]
        with one_thread():
            return fit_loop(params, lambda idx, train: head(xs[idx]).squeeze(-1), len(examples), y, objective,
                            self.settings, seed, get_state=lambda: copy.deepcopy(head.state_dict()),
                            set_state=head.load_state_dict,
                            penalty=(lambda: l2 * head.weight.pow(2).sum()) if l2 else None)

    @torch.no_grad()
    def predict(self, examples: list[Example]) -> np.ndarray:
        """P(label = 1) for each example."""
        if self.head is None:
            raise RuntimeError("fit the probe before predicting")
        x = self._standardize(self.featurize(examples))
        with one_thread():
            return torch.sigmoid(self.head(x).squeeze(-1)).numpy()


# --- fine-tuning: the backbone too (full or LoRA) ----------------------------------------------------


class FinetuneClassifier:
    """A linear head on a trainable backbone (full fine-tuning or LoRA), read like the probe."""

    def __init__(self, load_model: Callable[[], object], pairwise: bool, settings: TrainSettings, mode: str,
                 layer: int | None, pooling: str, max_length: int):
        self.load_model = load_model  # returns a fresh LoadedModel: every fit starts from pretrained weights
        self.pairwise = pairwise
        self.settings = settings
        self.mode = mode
        self.layer = layer
        self.pooling_name = pooling
        self.max_length = max_length
        self.lm = None
        self.backbone: nn.Module | None = None
        self.head: nn.Linear | None = None

    def _prepare(self, seed: int) -> None:
        lm = self.load_model()
        self.pooling = Fe.resolve_pooling(self.pooling_name, lm.kind)
        backbone = backbone_of(lm)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for p in backbone.parameters():
                p.requires_grad_(self.mode == "full")
            if self.mode == "lora":
                from peft import LoraConfig, get_peft_model

                lora = LoraConfig(r=self.settings.lora_r, lora_alpha=self.settings.lora_alpha, lora_dropout=0.0,
                                  target_modules="all-linear")
                backbone = get_peft_model(backbone, lora)
            self.head = nn.Linear(lm.model.config.hidden_size, 1, bias=not self.pairwise)
            nn.init.normal_(self.head.weight, std=0.02)
            if self.head.bias is not None:
                nn.init.zeros_(self.head.bias)
        self.head.to(next(backbone.parameters()).device)
        self.lm, self.backbone = lm, backbone

    def _rows(self, examples: list[Example]) -> list[list[list[int]]]:
        sides = 2 if self.pairwise else 1
        return [Fe.tokenize(self.lm, [e.texts[s] for e in examples], self.max_length, self.pooling)
                for s in range(sides)]

    def _logits(self, rows: list[list[list[int]]], idx: list[int]) -> torch.Tensor:
        out = []
        device = next(self.head.parameters()).device
        with Fe.truncated(self.backbone, self.layer):
            for side in rows:
                padded = right_pad([side[i] for i in idx], pad_id(self.lm.tokenizer))
                batch = {k: v.to(device) for k, v in padded.items()}
                hidden = self.backbone(**batch).last_hidden_state  # [b, s, d]
                out.append(self.head(pool_hidden(hidden, batch["attention_mask"], self.pooling).float()).squeeze(-1))
        return out[0] - out[1] if self.pairwise else out[0]

    def fit(self, examples: list[Example], targets: np.ndarray, objective: Objective, seed: int) -> FitReport:
        self._prepare(seed)
        rows = self._rows(examples)
        y = torch.as_tensor(np.asarray(targets, dtype=np.float32)).to(next(self.head.parameters()).device)
        trainable = [p for p in self.backbone.parameters() if p.requires_grad]
        params = [{"params": list(self.head.parameters()), "lr": self.settings.lr}]
        if trainable:
            params.append({"params": trainable, "lr": self.settings.finetune_lr})
        everything = [*self.backbone.named_parameters(), *(("head." + n, p) for n, p in self.head.named_parameters())]
        named = [(n, p) for n, p in everything if p.requires_grad]

        def forward(idx: list[int], train: bool) -> torch.Tensor:
            self.backbone.train(False)  # no dropout: deterministic, as for the reward models
            if train:
                return self._logits(rows, idx)
            return torch.cat([self._logits(rows, idx[s : s + 16]) for s in range(0, len(idx), 16)])

        def get_state() -> dict:
            return {n: p.detach().clone() for n, p in named}

        def set_state(state: dict) -> None:
            with torch.no_grad():
                for n, p in named:
                    p.copy_(state[n])

        return fit_loop(params, forward, len(examples), y, objective, self.settings, seed, get_state, set_state)

    @torch.no_grad()
    def predict(self, examples: list[Example]) -> np.ndarray:
        if self.head is None:
            raise RuntimeError("fit the classifier before predicting")
        rows = self._rows(examples)
        idx = list(range(len(examples)))
        logits = torch.cat([self._logits(rows, idx[s : s + 16]) for s in range(0, len(idx), 16)])
        return torch.sigmoid(logits).float().cpu().numpy()
