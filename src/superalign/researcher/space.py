"""The researcher's search space: the config keys of the generalize stage an idea may change, and their ranges.

An idea is a full assignment of the space (every parameter has a value), so that any two ideas, the baseline
included, can be compared and fed to a Bayesian optimizer.
"""

from __future__ import annotations

import math
import random
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Param(BaseModel):
    """One dimension: a key of the generalize stage's config and the values it may take."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="dotted key in the generalize section, e.g. confidence.alpha_max")
    kind: Literal["float", "log", "int", "choice"]
    low: float | None = None
    high: float | None = None
    choices: list[Any] = Field(default_factory=list)
    default: Any = Field(description="the value of the unchanged config (the baseline)")
    about: str = ""

    @model_validator(mode="after")
    def _ranges(self) -> "Param":
        if self.kind == "choice":
            if not self.choices or self.default not in self.choices:
                raise ValueError(f"{self.key}: a choice needs choices that include the default")
        elif self.low is None or self.high is None or not self.low < self.high or not self.low <= self.default <= self.high:
            raise ValueError(f"{self.key}: needs low < high and the default between them")
        elif self.kind == "log" and self.low <= 0:
            raise ValueError(f"{self.key}: a log range needs low > 0")
        return self

    def sample(self, rng: random.Random) -> Any:
        if self.kind == "choice":
            return rng.choice(self.choices)
        if self.kind == "int":
            return rng.randint(int(self.low), int(self.high))
        if self.kind == "log":
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.uniform(self.low, self.high)

    def check(self, value: Any) -> Any:
        """``value`` as this parameter's type, or ValueError naming the key and the range."""
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(f"{self.key}: {value!r} is not one of {self.choices}")
            return value
        number = int(value) if self.kind == "int" else float(value)
        if not self.low <= number <= self.high:
            raise ValueError(f"{self.key}: {number} is outside [{self.low}, {self.high}]")
        return number


# The weak-to-strong student's loss, its schedule and its optimization: what Burns et al. (2023) vary. None of it
# changes the weak supervisor or the ceiling, so PGR's denominator is the same for every idea on a seed.
W2S_SPACE = [
    Param(key="methods", kind="choice", choices=["naive", "confidence"], default="naive",
          about="the student's loss: cross-entropy on the weak labels, or the auxiliary confidence loss"),
    Param(key="confidence.alpha_max", kind="float", low=0.1, high=1.0, default=0.5,
          about="final weight of the student's own hardened predictions (confidence loss)"),
    Param(key="confidence.warmup_frac", kind="float", low=0.0, high=0.8, default=0.2,
          about="share of training over which that weight rises"),
    Param(key="student.lr", kind="log", low=1e-3, high=1e-1, default=1e-2, about="the student's learning rate"),
    Param(key="student.epochs", kind="int", low=2, high=120, default=60, about="the student's maximum epochs"),
    Param(key="student.l2", kind="log", low=1e-4, high=1.0, default=0.03, about="the student's L2 penalty"),
]


def baseline(space: list[Param]) -> dict[str, Any]:
    return {p.key: p.default for p in space}


def check_idea(space: list[Param], idea: dict[str, Any]) -> dict[str, Any]:
    """A full idea from a partial one (missing keys take the default); an unknown key is a ValueError."""
    by_key = {p.key: p for p in space}
    unknown = [k for k in idea if k not in by_key]
    if unknown:
        raise ValueError(f"not in the search space: {', '.join(unknown)} (it has {', '.join(by_key)})")
    return {p.key: p.check(idea[p.key]) if p.key in idea else p.default for p in space}


def tidy(idea: dict[str, Any]) -> dict[str, Any]:
    """Floats to 3 significant digits: ideas a person can read, and the values that are actually run."""
    return {k: float(f"{v:.3g}") if isinstance(v, float) else v for k, v in idea.items()}


def overrides(idea: dict[str, Any]) -> dict[str, Any]:
    """The generalize section's values for ``idea`` (the loss is a one-method list)."""
    return {key: [value] if key == "methods" else value for key, value in idea.items()}


def method(idea: dict[str, Any]) -> str:
    return idea.get("methods", "naive")


__all__ = ["Param", "W2S_SPACE", "baseline", "check_idea", "method", "overrides", "tidy"]
