"""Binary tasks of the world and from files, with their ground truth locked in a :class:`~superalign.world.vault.LabelVault`.

A task is a list of :class:`Example` s - ids and texts, never labels - plus a vault that holds the
labels. The protocol asks the vault for the labels it is allowed to see (the weak model's half, the
ceiling's half) and for the final scores; the strong student only ever gets texts and weak soft
labels, so it cannot read the truth it is scored on (DESIGN.md, "Honest numbers").

Tasks from the task world (``superalign.world``), labelled by its gold evaluator:

- ``fact``: is this statement true? (the world's true/false statements, split by fact)
- ``instruction``: does this response satisfy every instruction of the prompt? (synthetic responses,
  see :mod:`superalign.weak_to_strong.responses`; two per prompt, split by prompt)
- ``policy``: does this reply break the behaviour policy? (synthetic replies to tempting prompts)
- ``reward``: which of two responses does the gold reward prefer? (the reward-modelling case of Burns
  et al. 2023: the same response pairs as ``instruction``, label = gold(A) > gold(B), ties dropped)

And any labelled file: :func:`load_file_task` reads JSONL or CSV with a text column and a 0/1 label
column (optionally a second text column for pairwise tasks).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from superalign.records import jsonl_objects
from superalign.world import responses as R
from superalign.world.vault import (
    Example,
    LabelVault,
    TaskData,
    TaskDataError,
    check_task,
    split_groups,
)

WORLD_TASKS = ("fact", "instruction", "policy", "reward")
TRUE_LABELS = {"1", "true", "yes", "y", "t", "positive", "pos"}
FALSE_LABELS = {"0", "false", "no", "n", "f", "negative", "neg"}


# --- tasks of the world ------------------------------------------------------------------------------


# How examples read to a classifier. Kept short on purpose: frozen features of the strong model cost
# ~all of a CPU run's time, in proportion to tokens.
def _fact_text(statement: str) -> str:
    return statement


def _response_text(prompt: str, response: str) -> str:
    return f"Instruction: {prompt}\nResponse: {response}"


def _policy_text(messages: list[dict], response: str) -> str:
    # The last user turn only: system prompts (the secret's) triple the tokens, and a leaked code is
    # visible in the reply itself.
    return f"User: {messages[-1]['content']}\nAssistant: {response}"


def fact_task(seed: int, n_train: int, n_test: int) -> TaskData:
    """True/false statements: each fact's right and wrong claim, split by fact (both claims stay together).

    Only affirmative statements ("The capital of France is Rome."): with negations too ("... is not
    Rome"), MiniLM probes sit at chance (0.50 on 150 test statements, measured), and a weak supervisor
    at chance gives a student nothing to generalize from.
    """
    from superalign.world import World

    world = World(seed)
    statements = [s for split in ("train", "validation", "test") for s in world.statements(None, split)
                  if not s.negated]
    facts = sorted({s.fact_id for s in statements})
    random.Random(f"w2s-fact-{seed}").shuffle(facts)
    per_fact = {f: [s for s in statements if s.fact_id == f] for f in facts}
    test_facts = facts[: max(1, n_test // 2)]
    pool_facts = facts[len(test_facts):][: max(1, n_train // 2)]
    labels = {s.id: int(s.label) for s in statements}
    ex = lambda s: Example(s.id, (_fact_text(s.text),), s.fact_id)  # noqa: E731
    return TaskData("fact", "is this statement true? (World facts: a right and a wrong claim per fact)",
                    [ex(s) for f in pool_facts for s in per_fact[f]], [ex(s) for f in test_facts for s in per_fact[f]],
                    LabelVault(labels))


@dataclass(frozen=True)
class _Scored:
    text: str
    gold: float
    passed: bool


def _instruction_pairs(seed: int, split: str, n_prompts: int) -> list[tuple[str, _Scored, _Scored]]:
    """Two composed responses per instruction prompt, with different numbers of broken constraints."""
    from superalign.world import World

    world = World(seed)
    evaluator = world.evaluator()
    out = []
    for task in world.tasks("instruction", None, split):
        if len(out) >= n_prompts:
            break
        case = evaluator._truth[task.id][1]  # noqa: SLF001 - the data builder is on the world's side of the wall
        if any(i.type_id == "length:words" and i.kwargs["relation"] == "at least" for i in case.instructions):
            continue  # "at least 80+ words": long texts that cost CPU time and teach nothing new
        rng = random.Random(f"w2s-instruction-{seed}-{task.id}")
        k = len(case.instructions)
        broken = rng.sample(range(min(k, 2) + 1), 2)  # two different numbers of broken constraints in {0, 1, 2}
        scored = []
        for b in broken:
            intent = [True] * k
            for i in rng.sample(range(k), b):
                intent[i] = False
            text = R.instruction_response(case, intent, rng)
            s = evaluator.score(task, text)
            scored.append(_Scored(_response_text(task.prompt, text), s.gold, s.passed))
        out.append((task.id, scored[0], scored[1]))
    return out


def _pairs_for(seed: int, splits: tuple[str, ...], n_prompts: int) -> list[tuple[str, _Scored, _Scored]]:
    out: list = []
    for split in splits:
        if len(out) < n_prompts:
            out += _instruction_pairs(seed, split, n_prompts - len(out))
    return out


_POOL_SPLITS, _TEST_SPLITS = ("train", "validation"), ("test",)


def instruction_task(seed: int, n_train: int, n_test: int) -> TaskData:
    """Does the response follow every instruction? ``n_train`` (``n_test``) prompts, two responses each.

    The prompts and responses are those of :func:`reward_task`, so the two tasks share cached features.
    """
    labels: dict[str, int] = {}
    parts: dict[str, list[Example]] = {}
    for part, splits, n in (("pool", _POOL_SPLITS, n_train), ("test", _TEST_SPLITS, n_test)):
        parts[part] = []
        for task_id, a, b in _pairs_for(seed, splits, n):
            for side, s in (("a", a), ("b", b)):
                parts[part].append(Example(f"{task_id}-{side}", (s.text,), task_id))
                labels[f"{task_id}-{side}"] = int(s.passed)
    return TaskData("instruction", "does the response follow every instruction? (synthetic responses, gold verifiers)",
                    parts["pool"], parts["test"], LabelVault(labels),
                    notes=["responses are composed from templates (weak_to_strong.responses); labels are the "
                           "world's instruction verifiers"])


def reward_task(seed: int, n_train: int, n_test: int) -> TaskData:
    """Which of two responses does the gold reward prefer? (Burns et al.'s reward-modelling task.)

    The pairs are those of :func:`instruction_task` (same prompts, same texts: cached features are shared).
    """
    labels: dict[str, int] = {}
    parts: dict[str, list[Example]] = {}
    for part, splits, n in (("pool", _POOL_SPLITS, n_train), ("test", _TEST_SPLITS, n_test)):
        parts[part] = []
        for task_id, a, b in _pairs_for(seed, splits, n):
            if a.gold != b.gold:  # equal gold: no preference to learn
                parts[part].append(Example(f"{task_id}-pair", (a.text, b.text), task_id))
                labels[f"{task_id}-pair"] = int(a.gold > b.gold)
    return TaskData("reward", "which of two responses does the gold reward prefer? (pairs of synthetic responses)",
                    parts["pool"], parts["test"], LabelVault(labels), pairwise=True,
                    notes=["pairwise: each response is scored and the two scores compared (Bradley-Terry)"])


def policy_task(seed: int, n_train: int, n_test: int) -> TaskData:
    """Does this reply break the policy? Two synthetic replies per tempting prompt: one meant to, one not.

    ``n_train`` and ``n_test`` count replies (two per prompt).
    """
    from superalign.world import World

    world = World(seed)
    evaluator = world.evaluator()
    labels: dict[str, int] = {}
    parts: dict[str, list[Example]] = {}
    for part, splits, n in (("pool", _POOL_SPLITS, n_train), ("test", _TEST_SPLITS, n_test)):
        parts[part] = []
        tasks = [t for split in splits for t in world.tasks("policy", None, split)][: max(1, n // 2)]
        for task in tasks:
            case = evaluator._truth[task.id][1]  # noqa: SLF001 - data builder, world side
            rng = random.Random(f"w2s-policy-{seed}-{task.id}")
            for side, violate in (("v", True), ("c", False)):
                reply = R.policy_response(case, violate, rng)
                eid = f"{task.id}-{side}"
                parts[part].append(Example(eid, (_policy_text(task.messages, reply),), task.id))
                labels[eid] = int(not evaluator.score(task, reply).passed)
    return TaskData("policy", "does the reply break the behaviour policy? (synthetic replies, gold detectors)",
                    parts["pool"], parts["test"], LabelVault(labels),
                    notes=["replies are composed from templates (weak_to_strong.responses); labels are the "
                           "world's violation detectors"])


def world_task(name: str, seed: int, n_train: int, n_test: int) -> TaskData:
    """One of :data:`WORLD_TASKS`, built from ``World(seed)``."""
    builders = {"fact": fact_task, "instruction": instruction_task, "policy": policy_task, "reward": reward_task}
    if name not in builders:
        raise TaskDataError(f"unknown task {name!r}; world tasks are {', '.join(WORLD_TASKS)} (or give a dataset file)")
    return builders[name](seed, n_train, n_test)


# --- any labelled file -------------------------------------------------------------------------------


def _parse_label(value, where: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    text = str(value).strip().lower()
    if text in TRUE_LABELS:
        return 1
    if text in FALSE_LABELS:
        return 0
    raise TaskDataError(f"{where}: label {value!r} is not binary (use 0/1, true/false or yes/no)")


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise TaskDataError(f"dataset {path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".json"):
            return [row for _, row in jsonl_objects(path, TaskDataError)]
        if suffix in (".csv", ".tsv"):
            with path.open(newline="", encoding="utf-8") as f:
                return list(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","))
    except UnicodeDecodeError as e:
        raise TaskDataError(f"dataset {path}: not UTF-8 text ({e.reason})") from None
    raise TaskDataError(f"dataset {path}: unsupported format {suffix or '(none)'}; use .jsonl, .csv or .tsv")


def load_file_task(path: str | Path, text_column: str = "text", label_column: str = "label",
                   text_b_column: str | None = None, group_column: str | None = None,
                   test_fraction: float = 0.25, seed: int = 0, n_max: int | None = None) -> TaskData:
    """A task from a labelled JSONL/CSV file: ``text_column`` (and ``text_b_column`` for pairs) + ``label_column``.

    Labels may be 0/1, true/false or yes/no. Rows are split by ``group_column`` (default: each row its
    own group) into a training pool and a test set of ``test_fraction``. Raises :class:`TaskDataError`
    naming the file, the row and the column for anything that would make PGR meaningless.
    """
    path = Path(path)
    rows = _read_rows(path)
    if not rows:
        raise TaskDataError(f"dataset {path}: no rows")
    columns = set(rows[0])
    wanted = [c for c in (text_column, label_column, text_b_column, group_column) if c]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise TaskDataError(f"dataset {path}: column(s) {', '.join(map(repr, missing))} not found; the file has "
                           f"{', '.join(map(repr, sorted(columns)))} (--text-column / --label-column)")
    if n_max is not None:
        rows = rows[:n_max]
    examples, labels = [], {}
    for i, row in enumerate(rows):
        where = f"{path}, row {i + 1}"
        for c in wanted:
            if c not in row or row[c] is None or (c != label_column and str(row[c]).strip() == ""):
                raise TaskDataError(f"{where}: column {c!r} is missing or empty (every row needs the same columns)")
        texts = (str(row[text_column]),) + ((str(row[text_b_column]),) if text_b_column else ())
        eid = f"row-{i:06d}"
        examples.append(Example(eid, texts, str(row[group_column]) if group_column else eid))
        labels[eid] = _parse_label(row[label_column], f"{where}, column {label_column!r}")
    counts = np.bincount(list(labels.values()), minlength=2)
    if counts.min() == 0:
        only = "positive (1)" if counts[0] == 0 else "negative (0)"
        raise TaskDataError(f"dataset {path}: every label is {only}; a weak-to-strong experiment needs two classes")
    if group_column:
        test, pool = split_groups(examples, test_fraction, seed)
    else:  # stratified: each class is cut in the same proportion, so a small file keeps both in its test set
        test, pool = [], []
        for cls in (0, 1):
            part_test, part_pool = split_groups([e for e in examples if labels[e.id] == cls], test_fraction, seed)
            test, pool = test + part_test, pool + part_pool
    task = TaskData(f"file:{path.stem}", f"labelled file {path.name} ({len(examples)} rows)", pool, test,
                    LabelVault(labels), pairwise=bool(text_b_column))
    check_task(task)
    return task
