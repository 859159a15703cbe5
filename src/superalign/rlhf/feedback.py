"""Feedback data: sample responses from the policy, let a (simulated) labeler compare them, split by prompt.

The records are :class:`superalign.records.Preference`, the same ones the feedback studio writes, so a
file of human comparisons trains the reward model exactly like simulated ones (:func:`load_preferences`).
Splits are by prompt (task id): a prompt's comparisons never appear in two splits, so held-out accuracy
measures generalization to new prompts, not memorized responses.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from superalign.models import GenerationConfig, LoadedModel, generate
from superalign.progress import NullProgress, Progress
from superalign.records import Preference, first_error, jsonl_objects
from superalign.world import Task
from superalign.world.labelers import SimulatedLabeler
from superalign.rlhf.config import PAIRS_HELP, FeedbackConfig, LabelerSettings, PairSelection  # noqa: F401 - re-exported


class FeedbackDataError(ValueError):
    """A preference file or list that cannot be trained on; the message names the file (and line)."""


@dataclass
class PreferenceSplits:
    """Preferences split by prompt: no task id appears in two splits."""

    train: list[Preference]
    validation: list[Preference]
    test: list[Preference]


# ---------------------------------------------------------------------------------------------------
# Collecting


def sample_responses(policy: LoadedModel, tasks: list[Task], k: int, config: FeedbackConfig,
                     progress: Progress | None = None) -> list[list[str]]:
    """Sample ``k`` responses per task from ``policy``; returns one list of ``k`` strings per task.

    Seeded by ``config.seed``: response j of task i always draws from the same random stream
    (stream index i * k + j), whatever the batching.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    prompts = [task.messages for task in tasks for _ in range(k)]
    gen = GenerationConfig(max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                           top_p=config.top_p, seed=config.seed, batch_size=config.batch_size)
    advance = (progress or NullProgress()).task("sampling responses", len(prompts))
    flat = generate(policy, prompts, gen, progress=advance)
    return [flat[i * k:(i + 1) * k] for i in range(len(tasks))]


def collect_preferences(tasks: list[Task], responses: list[list[str]],
                        labeler: SimulatedLabeler) -> list[Preference]:
    """Compare every pair of distinct responses of each task (InstructGPT: all K-choose-2 pairs of a prompt).

    Identical responses are skipped: they carry no preference.
    """
    if len(tasks) != len(responses):
        raise ValueError(f"{len(tasks)} tasks but {len(responses)} response lists")
    prefs = []
    for task, group in zip(tasks, responses):
        for a, b in itertools.combinations(group, 2):
            if a == b:
                continue
            pref = labeler.prefer(task, a, b)
            prefs.append(pref.model_copy(update={"meta": {**pref.meta, "kind": task.kind,
                                                          "category": task.category}}))
    return prefs


# ---------------------------------------------------------------------------------------------------
# Loading


def _parse_record(path: Path, lineno: int, data: dict) -> Preference:
    where = f"{path}:{lineno}"
    kind = data.get("type", "preference")
    if kind != "preference":
        raise FeedbackDataError(f"{where}: a {kind!r} record, not a preference; a preference file holds only "
                                "records of type 'preference' (task_id, prompt, chosen, rejected, labeler)")
    try:
        return Preference.model_validate(data)
    except ValidationError as err:
        raise FeedbackDataError(f"{where}: not a valid preference record: {first_error(err)}") from None


def load_preferences(path: str | Path) -> list[Preference]:
    """Read a JSONL file of preference records (simulated or from the studio), with clear errors.

    Raises :class:`FeedbackDataError` for a missing or empty file, a malformed line (named as file:line),
    a record of another type, or a file where every record has chosen == rejected (nothing to learn).
    """
    path = Path(path)
    if not path.exists():
        raise FeedbackDataError(f"preference file {path} does not exist")
    if not path.is_file():
        raise FeedbackDataError(f"preference file {path} is not a file")
    prefs = [_parse_record(path, lineno, data) for lineno, data in jsonl_objects(path, FeedbackDataError)]
    if not prefs:
        raise FeedbackDataError(f"preference file {path} is empty: it holds no preference records")
    if not usable(prefs):
        raise FeedbackDataError(f"preference file {path}: all {len(prefs)} records are ties or have "
                                "chosen == rejected; a reward model needs at least one real preference")
    return prefs


def usable(prefs: Sequence[Preference]) -> list[Preference]:
    """The preferences a reward model can learn from: not ties, chosen different from rejected."""
    return [p for p in prefs if not p.tie and p.chosen != p.rejected]


def best_vs_worst(prefs: Sequence[Preference]) -> list[Preference]:
    """One pair per prompt: the response that won most of its comparisons against the one that won fewest.

    Wins are counted per response text over every comparison of the prompt (a tie is half a win for
    each), a round-robin (Copeland) score; prompts whose responses all score the same give no pair, and so
    does a prompt whose best and worst the labeler compared head to head without preferring the best. The
    widest-margin pair of each prompt is the cleanest signal for DPO when the responses come from one
    policy and most of its comparisons are near-ties (measured in the quick profile, see the README).
    """
    by_task: dict[str, list[Preference]] = {}
    for p in prefs:
        by_task.setdefault(p.task_id, []).append(p)
    out = []
    for task_id, group in by_task.items():
        wins: dict[str, float] = {}
        for p in group:
            if p.chosen == p.rejected:
                continue
            wins[p.chosen] = wins.get(p.chosen, 0.0) + (0.5 if p.tie else 1.0)
            wins[p.rejected] = wins.get(p.rejected, 0.0) + (0.5 if p.tie else 0.0)
        if len(wins) < 2:
            continue
        best, worst = max(wins, key=wins.get), min(wins, key=wins.get)  # equal scores: the first seen
        if wins[best] == wins[worst] or _direct_verdict(group, best, worst) is False:
            continue  # no overall preference, or the labeler did not prefer best over worst head to head
        first = group[0]
        out.append(Preference(task_id=task_id, prompt=first.prompt, chosen=best, rejected=worst,
                              labeler=first.labeler, meta={**first.meta, "derived": "best_vs_worst",
                                                           "wins": [wins[best], wins[worst]]}))
    return out


def select_pairs(prefs: Sequence[Preference], pairs: PairSelection) -> list[Preference]:
    """The comparisons a learner trains on: all of them (ties are dropped later) or best-vs-worst per prompt."""
    return best_vs_worst(prefs) if pairs == "best_vs_worst" else list(prefs)


def _direct_verdict(group: Sequence[Preference], a: str, b: str) -> bool | None:
    """Whether the labeler preferred ``a`` to ``b`` when it compared them (False for a tie); None if never."""
    for p in group:
        if {p.chosen, p.rejected} == {a, b}:
            return not p.tie and p.chosen == a
    return None


# ---------------------------------------------------------------------------------------------------
# Splitting


def split_by_prompt(prefs: Sequence[Preference], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                    seed: int = 0) -> PreferenceSplits:
    """Split preferences by task id into train/validation/test (sizes in prompts, not comparisons).

    The task ids are shuffled with ``seed``; validation and test get ``round(fraction * n_prompts)``
    prompts each (at least one each when their fraction is positive and there are >= 3 prompts) and
    train the rest, so no prompt's comparisons leak across splits.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    ids = sorted({p.task_id for p in prefs})
    random.Random(seed).shuffle(ids)
    n = len(ids)

    def count(f: float) -> int:
        c = int(round(f * n))
        return max(c, 1) if f > 0 and n >= 3 else c

    n_val, n_test = count(fractions[1]), count(fractions[2])
    n_train = n - n_val - n_test
    if n_train < 1 and fractions[0] > 0:
        raise ValueError(f"{n} prompts are too few to split with fractions {fractions}")
    assign = {tid: "train" for tid in ids[:n_train]}
    assign.update({tid: "validation" for tid in ids[n_train:n_train + n_val]})
    assign.update({tid: "test" for tid in ids[n_train + n_val:]})
    out: dict[str, list[Preference]] = {"train": [], "validation": [], "test": []}
    for p in prefs:
        out[assign[p.task_id]].append(p)
    return PreferenceSplits(**out)
