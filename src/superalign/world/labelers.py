"""Simulated labelers: ground truth turned into imperfect, human-like pairwise preferences.

Bradley-Terry (Bradley & Terry 1952; the preference model of Christiano et al. 2017 and InstructGPT):
``P(a > b) = sigmoid((u(a) - u(b)) / temperature)`` with the labeler's utility

    u(r) = gold(r)                                  (or gold over k random constraints: attention_k)
         + length_bias     * tanh(words(r) / 100)   (longer looks better)
         + confidence_bias * tanh(#confident - #hedges)   ("definitely" up, "I think"/"maybe" down)
         + flattery_bias   * tanh(#flattering phrases)    ("great question" up)

The coin is seeded per (seed, task.id, {a, b}) with a stable hash, so a labeler gives the same
answer whatever the call order, and ``prefer(task, a, b)`` agrees with ``prefer(task, b, a)``.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, fields

from superalign.records import Preference
from superalign.world.core import INSTRUCTION_QUALITY_WEIGHT, GoldEvaluator
from superalign.world.tasks import Task
from superalign.world.text import count_words, stable_seed

HEDGES = (
    "i think", "maybe", "perhaps", "i'm not sure", "i am not sure", "possibly", "might", "i guess",
    "it seems", "probably", "i believe", "not certain",
)
CONFIDENT = (
    "definitely", "certainly", "clearly", "without a doubt", "absolutely", "of course",
    "undoubtedly", "i am sure", "i'm sure", "obviously",
)
FLATTERY = (
    "great question", "excellent question", "good question", "what a great", "you're absolutely right",
    "you are absolutely right", "brilliant", "i love this question", "you're so smart", "fantastic question",
    "what an insightful", "wonderful question",
)


def _count_phrases(text: str, phrases: tuple[str, ...]) -> int:
    low = text.lower().replace("’", "'")
    return sum(len(re.findall(rf"(?<![a-z]){re.escape(p)}(?![a-z])", low)) for p in phrases)


def confidence_signal(response: str) -> float:
    """tanh(#confident markers - #hedges), in (-1, 1)."""
    return math.tanh(_count_phrases(response, CONFIDENT) - _count_phrases(response, HEDGES))


def flattery_signal(response: str) -> float:
    """tanh(#flattering phrases), in [0, 1)."""
    return math.tanh(_count_phrases(response, FLATTERY))


def length_signal(response: str) -> float:
    """tanh(words / 100), in [0, 1)."""
    return math.tanh(count_words(response) / 100)


def bt_probability(u_a: float, u_b: float, temperature: float) -> float:
    """Bradley-Terry P(a > b) = sigmoid((u_a - u_b) / T); T = 0 gives a hard (tie: 0.5) choice."""
    diff = u_a - u_b
    if temperature <= 0:
        return 0.5 if diff == 0 else float(diff > 0)
    z = diff / temperature
    if z >= 0:  # numerically stable sigmoid for tiny temperatures
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True)
class LabelerConfig:
    """How a simulated labeler deviates from the gold evaluator."""

    temperature: float = 0.1
    length_bias: float = 0.0
    confidence_bias: float = 0.0
    flattery_bias: float = 0.0
    attention_k: int | None = None  # check only k random constraints of an instruction task
    tie_margin: float = 0.0  # utilities closer than this are reported as a tie ("about the same")
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.tie_margin < 0:
            raise ValueError(f"tie_margin must be >= 0, got {self.tie_margin}")
        if self.attention_k is not None and self.attention_k < 1:
            raise ValueError(f"attention_k must be >= 1 or None, got {self.attention_k}")

    def describe(self) -> str:
        """The labeler string stored in records, e.g. ``"sim:bt(T=0.1,length_bias=0.2,seed=0)"``."""
        parts = [f"T={self.temperature:g}"]
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in ("temperature", "seed") and value != f.default:
                parts.append(f"{f.name}={value:g}" if isinstance(value, float) else f"{f.name}={value}")
        parts.append(f"seed={self.seed}")
        return f"sim:bt({','.join(parts)})"


class SimulatedLabeler:
    """A Bradley-Terry labeler built on the gold evaluator plus configurable biases."""

    def __init__(self, config: LabelerConfig, evaluator: GoldEvaluator):
        self.config = config
        self.evaluator = evaluator
        self.name = config.describe()

    def _attended_gold(self, task: Task, details: dict) -> float:
        """Gold recomputed over the k constraints this labeler looks at (same k for every response)."""
        strict: dict[str, bool] = details["strict"]
        ids = sorted(strict)
        k = self.config.attention_k
        if k is None or k >= len(ids):
            seen = ids
        else:
            seen = random.Random(stable_seed("attention", self.config.seed, task.id)).sample(ids, k)
        fraction = sum(strict[t] for t in seen) / len(seen)
        w = INSTRUCTION_QUALITY_WEIGHT
        return (1 - w) * fraction + w * float(details["non_degenerate"])

    def utility(self, task: Task, response: str) -> float:
        """The labeler's utility of ``response``: (attended) gold plus the biases."""
        score = self.evaluator.score(task, response)
        c = self.config
        base = score.gold
        if c.attention_k is not None and task.kind == "instruction":
            base = self._attended_gold(task, score.details)
        return (
            base
            + c.length_bias * length_signal(response)
            + c.confidence_bias * confidence_signal(response)
            + c.flattery_bias * flattery_signal(response)
        )

    def probability(self, task: Task, a: str, b: str) -> float:
        """The labeler's P(a preferred over b)."""
        return bt_probability(self.utility(task, a), self.utility(task, b), self.config.temperature)

    def prefer(self, task: Task, a: str, b: str) -> Preference:
        """Compare ``a`` and ``b``; the draw is seeded by (seed, task.id, {a, b})."""
        labeler = self.name
        if a == b:
            return Preference(task_id=task.id, prompt=task.messages, chosen=a, rejected=b,
                              labeler=labeler, confidence=0.5, tie=True)
        first, second = sorted((a, b))  # canonical order: prefer(a, b) and prefer(b, a) agree
        u_first, u_second = self.utility(task, first), self.utility(task, second)
        if abs(u_first - u_second) < self.config.tie_margin:
            # People say "about the same" rather than flip a coin; trainers skip ties.
            return Preference(task_id=task.id, prompt=task.messages, chosen=first, rejected=second,
                              labeler=labeler, confidence=0.5, tie=True)
        p_first = bt_probability(u_first, u_second, self.config.temperature)
        coin = random.Random(stable_seed("prefer", self.config.seed, task.id, first, second)).random()
        if coin < p_first:
            chosen, rejected, confidence = first, second, p_first
        else:
            chosen, rejected, confidence = second, first, 1.0 - p_first
        return Preference(task_id=task.id, prompt=task.messages, chosen=chosen, rejected=rejected,
                          labeler=labeler, confidence=confidence)
