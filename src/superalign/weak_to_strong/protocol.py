"""The weak-to-strong protocol of Burns et al. (2023, §3), one (task, weak, strong, seed) at a time.

1. Split the training pool in half (by group, with the seed).
2. Weak supervisor: trained on the ground truth of half 1; it labels half 2 with *soft* labels.
3. Strong ceiling: the strong model trained on the ground truth of half 2.
4. Strong students: the strong model trained on the weak soft labels of half 2 - naively (cross-
   entropy), with the auxiliary confidence loss, or through a bootstrapping chain of intermediate
   models - early-stopped on weak labels only.
5. Everyone is scored on the same held-out test set; only this last step reads the test labels.

Ground truth is reached only through the task's :class:`~superalign.world.vault.LabelVault`.
:func:`train_student` - the only code a student's training runs through - takes texts and soft
labels and never the vault, so it cannot read the labels it will be scored on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from superalign.weak_to_strong.classifier import FitReport, Objective
from superalign.world.vault import Example, Scores, TaskData, split_groups

# (spec, pairwise) -> a fresh, untrained classifier with fit(examples, targets, objective, seed) and predict.
MakeClassifier = Callable[[str, bool], object]


@dataclass
class Trained:
    """A fitted model's test predictions, its fit report and (students only) its soft labels' source."""

    role: str  # weak | ceiling | naive | confidence | bootstrap | intermediate:<spec>
    model: str
    test_probs: np.ndarray
    report: FitReport
    scores: Scores | None = None


@dataclass
class SeedOutcome:
    """Everything one seed of one (task, pair) produced."""

    task: str
    weak: str
    strong: str
    seed: int
    models: dict[str, Trained] = field(default_factory=dict)
    weak_label_accuracy: float = float("nan")  # how often the weak soft labels on half 2 are right
    student_weak_agreement: dict[str, float] = field(default_factory=dict)  # test agreement with the weak model
    n_half: tuple[int, int] = (0, 0)

    def score(self, role: str, metric: str) -> float:
        s = self.models[role].scores
        return getattr(s, metric)


def train_student(make: MakeClassifier, spec: str, pairwise: bool, examples: list[Example], soft_labels: np.ndarray,
                  objective: Objective, seed: int):
    """Train a strong student on ``examples`` and weak ``soft_labels`` only (no ground truth in reach).

    Early stopping inside ``fit`` holds out part of these examples *with their soft labels*: weak-label
    validation, as the paper requires. Returns the fitted classifier and its report.
    """
    if len(examples) != len(soft_labels):
        raise ValueError(f"{len(examples)} examples but {len(soft_labels)} soft labels")
    clf = make(spec, pairwise)
    report = clf.fit(examples, np.asarray(soft_labels, dtype=np.float32), objective, seed)
    return clf, report


def cross_fit_labels(make: MakeClassifier, spec: str, pairwise: bool, examples: list[Example], labels: np.ndarray,
                     objective: Objective, seed: int, folds: int = 2) -> np.ndarray:
    """Soft labels from an intermediate model trained on ``labels``, predicted out of fold.

    Bootstrapping (Burns et al. §4.3.1) relabels the student's data with each model of the chain. An
    intermediate that labelled its own training examples would mostly hand back the labels it was fit on,
    so each fold is labelled by a model trained on the other folds (our choice; the paper does not say).
    """
    groups = sorted({e.group for e in examples})
    rng = np.random.default_rng(seed)
    fold_of = {g: int(f) for g, f in zip(groups, rng.permutation(len(groups)) % folds)}
    out = np.zeros(len(examples), dtype=np.float32)
    for f in range(folds):
        held = [i for i, e in enumerate(examples) if fold_of[e.group] == f]
        train = [i for i, e in enumerate(examples) if fold_of[e.group] != f]
        if not held or not train:
            continue
        clf, _ = train_student(make, spec, pairwise, [examples[i] for i in train], labels[train], objective, seed + f)
        out[held] = clf.predict([examples[i] for i in held])
    return out


def run_seed(task: TaskData, weak: str, strong: str, seed: int, make: MakeClassifier, methods: list[str],
             objectives: dict[str, Objective], intermediates: list[str] | None = None,
             advance: Callable[[int], None] | None = None, make_student: MakeClassifier | None = None) -> SeedOutcome:
    """One seed of the protocol for one (task, weak, strong). ``objectives``: ce, confidence, bootstrap.
    ``make_student``: how students are built, when their training settings differ from the weak model's and the
    ceiling's (default ``make``)."""
    tick = advance or (lambda n=1: None)
    make_student = make_student or make
    half1, half2 = split_groups(task.pool, 0.5, seed)
    vault, test = task.vault, task.test
    out = SeedOutcome(task.name, weak, strong, seed, n_half=(len(half1), len(half2)))

    # 2. the weak supervisor learns from the truth of half 1 and labels half 2 (soft) and the test set
    weak_clf = make(weak, task.pairwise)
    weak_report = weak_clf.fit(half1, vault.reveal(half1, "weak:train").astype(np.float32), objectives["ce"], seed)
    soft = weak_clf.predict(half2)
    out.models["weak"] = Trained("weak", weak, weak_clf.predict(test), weak_report)
    out.weak_label_accuracy = vault.score(half2, soft, purpose="diagnostic:weak_labels").accuracy
    tick(1)

    # 3. the strong ceiling learns from the truth of half 2
    ceiling = make(strong, task.pairwise)
    ceiling_report = ceiling.fit(half2, vault.reveal(half2, "ceiling:train").astype(np.float32), objectives["ce"], seed)
    out.models["ceiling"] = Trained("ceiling", strong, ceiling.predict(test), ceiling_report)
    tick(1)

    # 4. strong students: texts of half 2 and the weak soft labels, nothing else
    for method in methods:
        labels = soft
        if method == "bootstrap":
            for i, mid in enumerate(intermediates or []):
                labels = cross_fit_labels(make_student, mid, task.pairwise, half2, labels, objectives["bootstrap"],
                                          seed + 101 * (i + 1))
        objective = objectives[{"naive": "ce"}.get(method, method)]  # confidence, bootstrap: their own
        student, report = train_student(make_student, strong, task.pairwise, half2, labels, objective, seed)
        out.models[method] = Trained(method, strong, student.predict(test), report)
        tick(1)

    # 5. the only look at the test labels
    for role, trained in out.models.items():
        trained.scores = vault.score(test, trained.test_probs, purpose=f"final:{role}")
    weak_hard = out.models["weak"].test_probs > 0.5
    for method in methods:
        out.student_weak_agreement[method] = float(np.mean((out.models[method].test_probs > 0.5) == weak_hard))
    return out
