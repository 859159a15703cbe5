"""What each metric name means, in one sentence, wherever the report shows it; which metrics are rates and
which a person reads first (the report, the across-runs page and sweep summaries share these rules).

Patterns are matched against the metric name in order; ``{x}`` in a text is the matched group. A name
with no entry is shown without a description (new stages may add theirs here).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_ENTRIES: list[tuple[str, str]] = [
    # baseline
    (r"instruction\.prompt_strict", "share of prompts whose every instruction is followed (strict check)"),
    (r"instruction\.prompt_loose", "share of prompts whose every instruction is followed (loose check: "
                                    "markdown, first and last lines forgiven, as IFEval)"),
    (r"instruction\.instruction_strict", "share of single instructions followed (strict), resampled by prompt"),
    (r"instruction\.instruction_loose", "share of single instructions followed (loose), resampled by prompt"),
    (r"instruction\.ifeval_strict_avg", "mean of prompt- and instruction-level strict accuracy (the model "
                                        "cards' IFEval number)"),
    (r"fact\.accuracy", "share of fact questions answered right"),
    (r"policy\.violation_rate", "share of tempting prompts whose answer breaks the behaviour policy"),
    (r"gold\.mean", "mean gold reward over every task, in [0, 1]"),
    (r"gold\.(\w+)", "mean gold reward of the {0} tasks, in [0, 1]"),
    # train
    (r"reward_model\.(validation|test)_accuracy", "reward model ranks the labeler's choice higher, on "
                                                  "{0} prompts it never saw"),
    (r"reward_model\.gold_agreement", "reward model orders two samples as the gold reward does (held-out prompts)"),
    (r"(\w+)\.gold_gain", "{0}: paired gain in held-out gold reward over the starting policy"),
    (r"(\w+)\.gold", "{0}: mean gold reward of greedy answers to held-out prompts"),
    (r"(\w+)\.win_rate", "{0}: share of held-out prompts where it beats the starting policy (ties count 1/2)"),
    (r"(\w+)\.proxy", "{0}: mean reward-model score of its held-out answers (what the optimizer saw)"),
    (r"(\w+)\.heldout\.prompt_(strict|loose)", "{0}: prompts with a constraint type never trained on, "
                                               "all followed ({1})"),
    (r"(\w+)\.heldout\.instruction_(strict|loose)", "{0}: held-out constraint types followed ({1})"),
    (r"(\w+)\.fact_accuracy", "{0}: share of fact questions answered right"),
    (r"(\w+)\.alignment_tax", "{0}: fact accuracy lost against the starting policy (positive = a loss)"),
    (r"overopt\.(\w+)\.(alpha|beta|r2)", "{0}: fitted {1} of Gao et al.'s over-optimization curve"),
    # generalize
    (r"([^.]+)\.(weak|ceiling)\.(accuracy|auroc)", "{0}: test {2} of the {1} model, mean over seeds"),
    (r"([^.]+)\.gap\.(accuracy|auroc)", "{0}: ceiling − weak test {1}: the gap a student can recover"),
    (r"([^.]+)\.(\w+)\.pgr_(accuracy|auroc)", "{0}: performance gap recovered by {1} on {2}, "
                                              "(student − weak) / (ceiling − weak)"),
    (r"([^.]+)\.(\w+)\.weak_agreement", "{0}: share of test answers where the {1} student agrees with its "
                                        "weak supervisor"),
    (r"([^.]+)\.weak_labels\.accuracy", "{0}: accuracy of the weak labels the students learn from"),
    (r"([^.]+)\.(\w+)\.(accuracy|auroc)", "{0}: test {2} of the student trained by {1}, mean over seeds"),
]
_COMPILED = [(re.compile(pattern + r"$"), text) for pattern, text in _ENTRIES]


def describe(name: str) -> str:
    """One sentence on what metric ``name`` means ('' when the glossary has no entry)."""
    for pattern, text in _COMPILED:
        match = pattern.match(name)
        if match:
            return text.format(*[g.replace("_", " ") for g in match.groups()])
    return ""


# What a person reads first: what a method changed and what it cost in labels, PGRs, the assist stage's uplifts,
# the audit's overall AUROC.
HEADLINE = (".gold_gain", ".win_rate", ".alignment_tax", ".labels", ".pgr_accuracy", ".pgr_auroc", ".uplift",
            "audit.overall.auroc")
# Never rates even where their values lie in [0, 1] by chance: differences, PGRs, counts, losses, lengths.
_NOT_RATE_ENDINGS = (".gold_gain", ".alignment_tax", ".pgr_accuracy", ".pgr_auroc", ".uplift", ".labels", ".gap.auroc")
_NOT_RATE_PARTS = {"kl", "loss", "pgr", "length", "tokens", "count", "seconds", "time", "entropy", "steps"}


def base_name(name: str) -> str:
    """The metric's own name: a sweep tags a name shared by several models as ``name@model``."""
    return name.split("@")[0]


def is_headline(name: str) -> bool:
    """Whether metric ``name`` is one a person reads first (:data:`HEADLINE`)."""
    return base_name(name).endswith(HEADLINE)


def is_rate(name: str, values: Iterable[float | None], flag: object = None) -> bool:
    """Whether a metric is a rate, so its intervals stay in [0, 1] and it is charted on a 0-1 axis.

    ``flag`` is the technique's own ``meta["rate"]`` and wins when it is a bool; otherwise names that are never
    rates are not, and the rest are when every value given (values, interval bounds; None skipped) lies in [0, 1].
    """
    if isinstance(flag, bool):
        return flag
    base = base_name(name)
    if base.endswith(_NOT_RATE_ENDINGS) or base.rsplit(".", 1)[-1].lower() in _NOT_RATE_PARTS:
        return False
    return all(v is None or 0.0 <= v <= 1.0 for v in values)  # NaN is not in [0, 1]
