"""One experiment: an idea run through ``sweep`` on some seeds, the generalize stage reading its tasks from the
evaluation server, and its score per seed.

The score of a seed is the performance gap recovered over all tasks together,
``(Σ student − Σ weak) / (Σ ceiling − Σ weak)`` of the test accuracies the server returned: one number per seed,
so that ideas are compared seed by seed (paired). None when the gap is too small to carry it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from superalign.researcher.space import method, overrides

MIN_GAP = 0.02  # per task, as the generalize stage's own PGR rule


@dataclass
class Setup:
    """Everything an experiment needs besides the idea; JSON, so that the agent's process can be handed it."""

    url: str  # the evaluation server
    root: str  # run directories of the experiments
    profile: str
    model: str
    device: str
    tasks: list[str]
    base: dict[str, Any] = field(default_factory=dict)  # generalize values every experiment shares

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def make_config(setup: Setup, idea: dict[str, Any]) -> Callable[[list[str], int], Any]:
    """The sweep's config maker for ``idea``: the profile, the shared values, the idea, the server, one seed."""
    from superalign.config import load_config

    section = {**setup.base, **overrides(idea), "tasks": setup.tasks, "eval_server": setup.url, "n_seeds": 1}
    fixed = [f"generalize.{key}={json.dumps(value)}" for key, value in section.items()]

    def make(extra: list[str], seed: int):
        return load_config(setup.profile, overrides=[*fixed, *extra], model=setup.model, seed=seed,
                           device=setup.device)

    return make


def evaluate(setup: Setup, idea: dict[str, Any], seeds: list[int], log: Callable[[str], None] = lambda _: None
             ) -> tuple[dict[int, float | None], float, str | None]:
    """``({seed: score}, seconds, error)`` of ``idea``: the generalize stage once per seed, one after another in this
    process (the agent's sandbox allows no new process), through :func:`superalign.sweep.run_sweep`."""
    import time

    from superalign.sweep import plan, run_sweep

    start = time.monotonic()
    cells = plan("generalize", seeds, {}, make_config(setup, idea), setup.root)
    outcome = run_sweep("generalize", cells, setup.root, backend="local", log=log, pull=False)
    scores = {cell.seed: None if cell.label in outcome.failed else seed_score(cell.run_dir, method(idea))
              for cell in cells}
    error = "; ".join(outcome.failed.values()) or None
    return scores, time.monotonic() - start, error


def seed_score(run_dir: Path, student: str) -> float | None:
    """PGR over the run's tasks together, from its ``W2SSeed`` records (one seed per run)."""
    from superalign.records import W2SSeed, read_jsonl

    seeds = [r for r in read_jsonl(run_dir / "records" / "generalize.jsonl") if isinstance(r, W2SSeed)]
    sums = {role: sum(r.scores[role]["accuracy"] for r in seeds) for role in ("weak", "ceiling", student)}
    gap = sums["ceiling"] - sums["weak"]
    if not seeds or gap < MIN_GAP * len(seeds):
        return None
    return (sums[student] - sums["weak"]) / gap


__all__ = ["Setup", "evaluate", "make_config", "seed_score"]
