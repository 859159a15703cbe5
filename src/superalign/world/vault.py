"""Binary classification data with its ground truth locked in a :class:`LabelVault`.

A task is a list of :class:`Example` s - ids and texts, never labels - plus a vault that holds the
labels. A technique asks the vault only for the labels it is allowed to see and for its final scores;
what it is scored on it never reads (DESIGN.md, "Honest numbers"). Weak-to-strong uses these tasks today;
probes and audits will too. The tasks themselves: :mod:`superalign.world.binary`.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


class TaskDataError(ValueError):
    """A dataset that cannot give a meaningful binary task (one class, bad columns...)."""


@dataclass(frozen=True)
class Example:
    """One input to classify. Carries no label: the label lives in the task's :class:`LabelVault`.

    ``texts`` holds one text, or two for a pairwise task ("is A better than B?"), where a classifier
    scores each text and compares (a Bradley-Terry reward model).
    """

    id: str
    texts: tuple[str, ...]
    group: str  # examples of one group (a fact, a prompt) always land in the same split


@dataclass(frozen=True)
class Scores:
    """Ground-truth scores of predicted probabilities P(label = 1) on some examples."""

    accuracy: float
    auroc: float
    n: int
    correct: np.ndarray = field(repr=False, compare=False)  # [n] 0/1, for paired comparisons


class LabelVault:
    """The only holder of a task's ground truth.

    Techniques never get the vault. The protocol calls :meth:`reveal` for the sets whose ground truth
    a model is *allowed* to train on (the weak model's half, the strong ceiling's half), and
    :meth:`score` to grade predictions; every call is logged in :attr:`log` as ``(purpose, ids)`` so
    a test can check that the student's half was never revealed to the student.
    """

    def __init__(self, labels: dict[str, int]):
        self.__labels = {k: int(v) for k, v in labels.items()}  # name-mangled: not a public attribute
        self.log: list[tuple[str, frozenset[str]]] = []

    def __len__(self) -> int:
        return len(self.__labels)

    def reveal(self, examples: Sequence[Example], purpose: str) -> np.ndarray:
        """Ground-truth labels [n] (0/1) of ``examples`` for a model that is meant to see them."""
        self.log.append((purpose, frozenset(e.id for e in examples)))
        return np.array([self.__labels[e.id] for e in examples], dtype=np.int64)

    def score(self, examples: Sequence[Example], probs: np.ndarray, purpose: str = "score") -> Scores:
        """Accuracy (threshold 0.5) and AUROC of ``probs`` = P(label = 1) against the truth."""
        from superalign.stats import auroc

        probs = np.asarray(probs, dtype=float).reshape(-1)
        if probs.shape[0] != len(examples):
            raise ValueError(f"{len(examples)} examples but {probs.shape[0]} predictions")
        self.log.append((purpose, frozenset(e.id for e in examples)))
        y = np.array([self.__labels[e.id] for e in examples], dtype=np.int64)
        correct = ((probs > 0.5).astype(np.int64) == y).astype(float)
        auc = auroc(y, probs) if 0 < y.sum() < y.size else float("nan")
        return Scores(accuracy=float(correct.mean()), auroc=auc, n=int(y.size), correct=correct)

    def save(self, path) -> None:
        """Write the labels to ``path``, readable by this user only: the evaluation server's label file, which
        the agent's sandbox refuses to open (:mod:`superalign.eval_server.sandbox`)."""
        import json
        import os

        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.__labels, f)

    @classmethod
    def load(cls, path) -> "LabelVault":
        import json
        from pathlib import Path

        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def ids(self) -> frozenset[str]:
        """The example ids it holds labels for (not the labels)."""
        return frozenset(self.__labels)

    def class_counts(self, examples: Sequence[Example]) -> tuple[int, int]:
        """(negatives, positives) among ``examples`` - the balance, not which example is which."""
        pos = sum(self.__labels[e.id] for e in examples)
        return len(examples) - pos, pos


@dataclass
class TaskData:
    """A binary task: examples for training (``pool``) and for the final test, and their vault."""

    name: str
    description: str
    pool: list[Example]  # split per seed into the weak half and the strong half
    test: list[Example]
    vault: LabelVault
    pairwise: bool = False
    notes: list[str] = field(default_factory=list)  # e.g. "responses are synthetic"

    def fingerprint(self) -> str:
        """A short hash of the task's texts (not its labels): names its cached features."""
        h = hashlib.sha256(self.name.encode())
        for e in [*self.pool, *self.test]:
            h.update("\x1e".join(e.texts).encode())
        return h.hexdigest()[:12]


def check_task(task: TaskData, min_per_class: int = 2) -> None:
    """Refuse a task where PGR could not mean anything: too few examples or a missing class."""
    for part, examples in (("training pool", task.pool), ("test set", task.test)):
        if len(examples) < 2 * min_per_class:
            raise TaskDataError(f"task {task.name}: the {part} has {len(examples)} examples; need at least "
                               f"{2 * min_per_class}")
        neg, pos = task.vault.class_counts(examples)
        if min(neg, pos) < min_per_class:
            raise TaskDataError(
                f"task {task.name}: the {part} has {pos} positive and {neg} negative examples; a binary task "
                f"needs at least {min_per_class} of each class (accuracy and AUROC are meaningless with one class)")


def split_groups(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Split by group: about ``fraction`` of the groups (shuffled with ``seed``) go to the first part."""
    groups = sorted({e.group for e in examples})
    random.Random(seed).shuffle(groups)
    first = set(groups[: int(round(fraction * len(groups)))])
    return [e for e in examples if e.group in first], [e for e in examples if e.group not in first]
