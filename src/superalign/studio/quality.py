"""Label quality: gold accuracy, inter-annotator agreement, time per item, the effect of assistance. Pure.

Agreement is measured on items that two or more labelers labeled: Cohen's kappa for each pair of labelers
(their mean over pairs) and Krippendorff's alpha over all labelers at once (it handles any number of
labelers per item and missing labels).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from superalign.stats import Interval, bootstrap_ci

WORK_CAP_S = 600.0  # a longer gap between serving and submitting is a break, not work (throughput)


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa of two labelers on the same items: (p_o - p_e) / (1 - p_e). Cohen (1960), eq. 1.

    ``p_o`` is the observed agreement, ``p_e`` the agreement expected from each labeler's own label
    frequencies. NaN when undefined (no items, or both labelers always give the same single label).
    """
    if len(a) != len(b):
        raise ValueError(f"two labelers need labels for the same items: {len(a)} vs {len(b)}")
    if not a:
        return math.nan
    n = len(a)
    p_o = sum(x == y for x, y in zip(a, b)) / n
    cats = set(a) | set(b)
    p_e = sum((sum(x == c for x in a) / n) * (sum(y == c for y in b) / n) for c in cats)
    if math.isclose(p_e, 1.0):
        return math.nan
    return (p_o - p_e) / (1.0 - p_e)


def krippendorff_alpha(units: Mapping[Hashable, Sequence[Any]],
                       level: Literal["nominal", "interval"] = "nominal") -> float:
    """Krippendorff's alpha = 1 - D_o / D_e from the coincidence matrix (Krippendorff 2011, "Computing
    Krippendorff's Alpha-Reliability", sections B and C).

    ``units`` maps each item to the values its labelers gave (any number; items with fewer than two are
    not pairable and are dropped). ``interval`` uses the squared difference as distance. NaN when fewer
    than two pairable values or no expected disagreement.
    """
    pairable = [list(v) for v in units.values() if len(v) >= 2]
    values = sorted({x for v in pairable for x in v}, key=lambda x: (str(type(x)), x))
    if not pairable or len(values) < 1:
        return math.nan
    index = {v: i for i, v in enumerate(values)}
    o = np.zeros((len(values), len(values)))  # coincidences o_ck
    for v in pairable:
        m = len(v)
        for i, j in itertools.permutations(range(m), 2):
            o[index[v[i]], index[v[j]]] += 1.0 / (m - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if level == "nominal":
        delta2 = 1.0 - np.eye(len(values))
    elif level == "interval":
        x = np.asarray(values, dtype=float)
        delta2 = (x[:, None] - x[None, :]) ** 2
    else:
        raise ValueError(f"level must be 'nominal' or 'interval', got {level!r}")
    d_o = float((o * delta2).sum() / n)
    d_e = float((np.outer(n_c, n_c) * delta2).sum() / (n * (n - 1))) if n > 1 else 0.0
    if d_e == 0.0:
        return math.nan
    return 1.0 - d_o / d_e


def is_correct(task: str, answer: Mapping[str, Any], truth: Mapping[str, Any] | None) -> bool | None:
    """Whether a label matches an item's known answer; None when there is none to compare with.

    pairwise: same choice; rating: within ``truth["tolerance"]`` (default 0) of the known rating;
    flaw: found a flaw exactly when there is one, and, when the truth lists spans, one marked span
    overlaps one of them.
    """
    if truth is None:
        return None
    if task == "pairwise":
        return answer.get("choice") == truth.get("choice")
    if task == "rating":
        return abs(int(answer["rating"]) - int(truth["rating"])) <= int(truth.get("tolerance", 0))
    if task == "flaw":
        flaws = answer.get("flaws", [])
        if bool(flaws) != bool(truth.get("flawed")):
            return False
        spans = truth.get("spans")
        if truth.get("flawed") and spans:
            return any(f["start"] < e and s < f["end"] for f in flaws for s, e in spans)
        return True
    return None


def agreement_value(task: str, answer: Mapping[str, Any]) -> Any:
    """The value compared across labelers: the choice, the rating, whether a flaw was found, or the verdict."""
    if task == "pairwise":
        return answer.get("choice")
    if task == "rating":
        return int(answer["rating"])
    if task == "flaw":
        return "flawed" if answer.get("flaws") else "no_flaw"
    if task == "review":
        return answer.get("verdict")
    return None


@dataclass
class LabelRow:
    """One label with what quality needs to know about its item."""

    labeler: str
    item: int
    answer: dict[str, Any]
    truth: dict[str, Any] | None
    gold: bool
    has_assistance: bool
    assisted: bool
    served_at: float
    created_at: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.created_at - self.served_at)


@dataclass
class LabelerQuality:
    name: str
    labels: int
    assisted: int
    gold_labels: int
    gold_accuracy: Interval | None  # over this labeler's gold items, bootstrap 95% interval
    median_seconds: float | None  # time from serving the item to the acknowledged submission
    labels_per_hour: float | None  # over working time (gaps above WORK_CAP_S count as WORK_CAP_S)
    last_at: float | None


@dataclass
class Quality:
    """Everything the dashboard shows about a campaign's labels."""

    task: str
    labels: int
    labelers: list[LabelerQuality]
    overlap_items: int  # items with labels from two or more labelers
    kappa: float  # mean pairwise Cohen's kappa (NaN if undefined)
    kappa_pairs: int
    alpha: float  # Krippendorff's alpha (nominal; interval for ratings)
    alpha_level: str
    accuracy_assisted: Interval | None  # on items with a known answer and assistance available
    accuracy_unassisted: Interval | None
    assistance_gain: Interval | None  # assisted - unassisted accuracy, bootstrap 95% interval
    answers: dict[str, int] = field(default_factory=dict)  # how often each agreement value was given


def _interval(values: Sequence[float], seed: int = 0) -> Interval | None:
    return bootstrap_ci(np.asarray(values, dtype=float), seed=seed) if len(values) else None


def diff_ci(x: Sequence[float], y: Sequence[float], n_boot: int = 2000, seed: int = 0) -> Interval | None:
    """mean(x) - mean(y) with a percentile-bootstrap 95% interval, resampling each group on its own."""
    if not len(x) or not len(y):
        return None
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    rng = np.random.default_rng(seed)
    boot = (xa[rng.integers(0, xa.size, (n_boot, xa.size))].mean(axis=1)
            - ya[rng.integers(0, ya.size, (n_boot, ya.size))].mean(axis=1))
    low, high = np.quantile(boot, [0.025, 0.975])
    return Interval(float(xa.mean() - ya.mean()), float(low), float(high), int(xa.size + ya.size))


def labeler_quality(task: str, name: str, rows: Sequence[LabelRow]) -> LabelerQuality:
    gold = [r for r in rows if r.gold and r.truth is not None]
    correct = [float(is_correct(task, r.answer, r.truth)) for r in gold]
    seconds = [r.seconds for r in rows]
    work = sum(min(s, WORK_CAP_S) for s in seconds)
    return LabelerQuality(
        name=name, labels=len(rows), assisted=sum(r.assisted for r in rows), gold_labels=len(gold),
        gold_accuracy=_interval(correct),
        median_seconds=float(np.median(seconds)) if seconds else None,
        labels_per_hour=len(rows) / work * 3600.0 if work > 0 else None,
        last_at=max((r.created_at for r in rows), default=None))


def campaign_quality(task: str, rows: Sequence[LabelRow], labelers: Sequence[str] = ()) -> Quality:
    """Per-labeler quality, agreement on overlapping items and the assistance effect of one campaign."""
    by_labeler: dict[str, list[LabelRow]] = defaultdict(list)
    for r in rows:
        by_labeler[r.labeler].append(r)
    names = list(dict.fromkeys([*labelers, *by_labeler]))
    per = [labeler_quality(task, n, by_labeler.get(n, [])) for n in names]

    units: dict[int, dict[str, Any]] = defaultdict(dict)  # item -> labeler -> value
    answers: dict[str, int] = defaultdict(int)
    for r in rows:
        value = agreement_value(task, r.answer)
        if value is not None:
            units[r.item][r.labeler] = value
            answers[str(value)] += 1
    overlap = {item: v for item, v in units.items() if len(v) >= 2}
    kappas = []
    if task in ("pairwise", "flaw", "review"):
        for a, b in itertools.combinations(sorted(by_labeler), 2):
            shared = [item for item, v in overlap.items() if a in v and b in v]
            if len(shared) >= 2:
                k = cohen_kappa([overlap[i][a] for i in shared], [overlap[i][b] for i in shared])
                if not math.isnan(k):
                    kappas.append(k)
    level = "interval" if task == "rating" else "nominal"
    alpha = krippendorff_alpha({i: list(v.values()) for i, v in overlap.items()}, level) if overlap else math.nan

    keyed = [r for r in rows if r.truth is not None and r.has_assistance]
    acc_a = [float(is_correct(task, r.answer, r.truth)) for r in keyed if r.assisted]
    acc_u = [float(is_correct(task, r.answer, r.truth)) for r in keyed if not r.assisted]
    return Quality(task=task, labels=len(rows), labelers=per, overlap_items=len(overlap),
                   kappa=float(np.mean(kappas)) if kappas else math.nan, kappa_pairs=len(kappas),
                   alpha=alpha, alpha_level=level, accuracy_assisted=_interval(acc_a),
                   accuracy_unassisted=_interval(acc_u), assistance_gain=diff_ci(acc_a, acc_u),
                   answers=dict(answers))
