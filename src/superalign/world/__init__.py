"""The ground-truth task world: seeded, offline, pure Python (no torch).

>>> from superalign.world import World
>>> world = World(seed=0)
>>> task = world.tasks("fact", 1, split="test")[0]
>>> world.evaluator().score(task, "I am not sure.").gold
0.0

Three kinds of tasks (``instruction``, ``fact``, ``policy``) whose truth stays behind
:class:`GoldEvaluator`, true/false :class:`Statement` s for probes, and simulated labelers in
:mod:`superalign.world.labelers`.
"""

from superalign.world.core import GoldEvaluator, Score, World
from superalign.world.facts import Statement
from superalign.world.instructions import CONSTRAINT_TYPES, Instruction, instruction_metrics, per_type_accuracy
from superalign.world.policy import RULES, policy_spec
from superalign.world.tasks import KINDS, SPLITS, Task

__all__ = [
    "CONSTRAINT_TYPES",
    "GoldEvaluator",
    "Instruction",
    "KINDS",
    "RULES",
    "SPLITS",
    "Score",
    "Statement",
    "Task",
    "World",
    "instruction_metrics",
    "per_type_accuracy",
    "policy_spec",
]
