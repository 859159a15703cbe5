"""The Task record shown to models: a prompt and an id, never the ground truth."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("instruction", "fact", "policy")
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Task:
    """One task of the world.

    The task carries NO ground truth: the truth lives in the :class:`~superalign.world.World` and is
    only reachable through :meth:`GoldEvaluator.score`, so a technique under test cannot read it.
    """

    id: str  # unique and stable for (seed, kind, index), e.g. "instruction-s0-00012"
    kind: str  # "instruction" | "fact" | "policy"
    messages: list[dict]  # chat messages shown to the model: optional system, then user
    category: str  # instruction: constraint type ids joined by "+"; fact: topic; policy: rule id

    def __hash__(self) -> int:  # messages is a list; the id identifies the task
        return hash(self.id)

    @property
    def prompt(self) -> str:
        """The last user message (convenience for single-turn tasks)."""
        return self.messages[-1]["content"]


def task_id(kind: str, seed: int, index: int) -> str:
    """The stable id of the ``index``-th task of ``kind`` in the pool of ``World(seed)``."""
    return f"{kind}-s{seed}-{index:05d}"
