"""The protocol on planted features: students learn from weak labels, and never see the ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from superalign.weak_to_strong import TrainSettings
from superalign.weak_to_strong.classifier import Objective, ProbeClassifier
from superalign.weak_to_strong.metrics import summarize
from superalign.weak_to_strong.protocol import run_seed
from superalign.world.vault import Example, LabelVault, TaskData, split_groups

N_POOL, N_TEST = 400, 200
SETTINGS = TrainSettings(epochs=15, patience=3, lr=3e-2)
OBJECTIVES = {"ce": Objective("ce"), "confidence": Objective("confidence", 0.5, 0.2), "bootstrap": Objective("ce")}


def planted(seed: int = 0) -> tuple[TaskData, dict[str, torch.Tensor], dict[str, int]]:
    """Label = sign of a latent z. The strong model sees z (plus noise dimensions); the weak model only sees
    z + 2u, where u is noise that the strong model cannot see: the weak model errs, in a way the strong
    model cannot imitate (the mechanism behind weak-to-strong generalization)."""
    g = np.random.default_rng(seed)
    n = N_POOL + N_TEST
    z, u = g.normal(size=n), g.normal(size=n)
    labels = (z > 0).astype(int)
    strong = np.concatenate([z[:, None], g.normal(size=(n, 5))], axis=1)
    weak = np.concatenate([(z + 2 * u)[:, None], g.normal(size=(n, 2))], axis=1)
    examples = [Example(f"x{i}", (f"text {i}",), f"g{i}") for i in range(n)]
    feats = {"strong": {e.id: torch.tensor(strong[i], dtype=torch.float32) for i, e in enumerate(examples)},
             "weak": {e.id: torch.tensor(weak[i], dtype=torch.float32) for i, e in enumerate(examples)}}
    truth = {e.id: int(labels[i]) for i, e in enumerate(examples)}
    task = TaskData("planted", "planted", examples[:N_POOL], examples[N_POOL:], LabelVault(truth))
    return task, feats, truth


def maker(feats, calls: list | None = None):
    def make(spec: str, pairwise: bool):
        def featurize(examples):
            return torch.stack([feats[spec][e.id] for e in examples])

        clf = ProbeClassifier(featurize, pairwise, SETTINGS)
        if calls is not None:  # spy: record what every fit receives
            fit = clf.fit

            def spy(examples, targets, objective, seed):
                calls.append((spec, [e.id for e in examples], np.asarray(targets).copy()))
                return fit(examples, targets, objective, seed)

            clf.fit = spy
        return clf

    return make


def test_a_strong_student_recovers_most_of_the_gap_on_planted_features():
    task, feats, _ = planted()
    outcomes = [run_seed(task, "weak", "strong", s, maker(feats), ["naive", "confidence"], OBJECTIVES) for s in range(3)]
    weak = np.mean([o.score("weak", "accuracy") for o in outcomes])
    ceiling = np.mean([o.score("ceiling", "accuracy") for o in outcomes])
    naive = np.mean([o.score("naive", "accuracy") for o in outcomes])
    assert ceiling > 0.9 and weak < 0.8  # a real capability gap
    assert naive > weak + 0.1  # the student does not just imitate its supervisor's errors
    metrics, _ = summarize(outcomes, min_gap=0.02)
    p = next(m for m in metrics if m.name == "planted.naive.pgr_accuracy")
    assert p.value > 0.5 and len(p.seeds) == 3


def test_the_student_never_sees_ground_truth():
    """Flip every ground-truth label of the student's half: the weak model (trained on the other half) and
    every student must come out identical, while the ceiling (trained on that truth) must change. If any
    student could read the truth of its half, its predictions would move with the flip."""
    task, feats, truth = planted()
    seed = 0
    _, half2 = split_groups(task.pool, 0.5, seed)
    flipped = dict(truth)
    for e in half2:
        flipped[e.id] = 1 - flipped[e.id]
    task_flipped = TaskData(task.name, task.description, task.pool, task.test, LabelVault(flipped))
    a = run_seed(task, "weak", "strong", seed, maker(feats), ["naive", "confidence"], OBJECTIVES)
    b = run_seed(task_flipped, "weak", "strong", seed, maker(feats), ["naive", "confidence"], OBJECTIVES)
    for role in ("weak", "naive", "confidence"):
        np.testing.assert_array_equal(a.models[role].test_probs, b.models[role].test_probs)
    assert not np.allclose(a.models["ceiling"].test_probs, b.models["ceiling"].test_probs)


def test_students_get_only_texts_and_weak_soft_labels():
    task, feats, truth = planted()
    calls: list = []
    out = run_seed(task, "weak", "strong", 0, maker(feats, calls), ["naive", "confidence"], OBJECTIVES)
    half1, half2 = split_groups(task.pool, 0.5, 0)
    weak_fit, ceiling_fit, *student_fits = calls
    assert weak_fit[1] == [e.id for e in half1] and set(np.unique(weak_fit[2])) <= {0.0, 1.0}
    assert ceiling_fit[1] == [e.id for e in half2]
    for spec, ids, targets in student_fits:
        assert spec == "strong" and ids == [e.id for e in half2]
        assert not set(np.unique(targets)) <= {0.0, 1.0}  # soft labels, not 0/1 truth
        truth2 = np.array([truth[i] for i in ids])
        assert not np.array_equal((targets > 0.5).astype(int), truth2)  # the weak model's (imperfect) view
    # The vault revealed the student's half only to the ceiling (and to a diagnostic after labelling);
    # the test labels only to the final scoring.
    for purpose, ids in task.vault.log:
        if ids & {e.id for e in half2}:
            assert purpose in ("ceiling:train", "diagnostic:weak_labels")
        if ids & {e.id for e in task.test}:
            assert purpose.startswith("final:")
    assert {"weak", "ceiling", "naive", "confidence"} == set(out.models)


def test_bootstrapping_runs_a_chain_of_intermediate_models():
    task, feats, _ = planted()
    feats["mid"] = {k: torch.cat([v[:1] * 0.5, v[1:3]]) for k, v in feats["strong"].items()}
    calls: list = []
    out = run_seed(task, "weak", "strong", 0, maker(feats, calls), ["bootstrap"], OBJECTIVES, intermediates=["mid"])
    specs = [c[0] for c in calls]
    assert specs == ["weak", "strong", "mid", "mid", "strong"]  # 2 folds of the intermediate, then the student
    assert out.score("bootstrap", "accuracy") > out.score("weak", "accuracy")


def test_vault_scores_and_refuses_mismatched_predictions():
    ex = [Example(f"e{i}", ("t",), f"g{i}") for i in range(4)]
    vault = LabelVault({"e0": 0, "e1": 1, "e2": 1, "e3": 0})
    s = vault.score(ex, np.array([0.1, 0.9, 0.4, 0.2]))
    assert s.accuracy == 0.75 and s.auroc == 1.0  # both positives score above both negatives
    with pytest.raises(ValueError, match="4 examples but 3"):
        vault.score(ex, np.array([0.1, 0.2, 0.3]))
    assert not any("label" in name.lower() for name in vars(vault) if not name.startswith("_LabelVault"))
