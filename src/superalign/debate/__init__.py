"""Debate and consultancy for a judge who lacks the information (Khan et al. 2024; Kenton et al. 2024).

``run(config, lm)``:

1. hidden-information questions from the world (:mod:`superalign.world.passages`): a passage built from the
   knowledge base's objects with planted distractors, a question, two candidate answers; only debaters see the
   passage;
2. protocols: **naive** (the judge alone), **consultancy** (one adviser argues a side drawn at random),
   **debate** (two debaters, one per side, for ``rounds`` rounds, simultaneous or sequential); every quote is
   checked against the passage (exactly, or up to case, spaces and punctuation) and shown to the judge as
   verified or not, and every turn records the model that wrote it;
3. debaters: the model greedily, the model made more persuasive by best-of-n against the model judge's
   preference, the oracle (it quotes the passage's best sentence for its side: the skilled end of the scale),
   or any chat role;
4. judges: a simulated judge of limited understanding (``judge_skill``), the model itself (log-probabilities
   of A and B), any chat role, and people in the studio (a transcript is a studio item);
5. judge accuracy per protocol, debater setup and judge, with bootstrap intervals over questions; the setups
   ordered by skill give the plot of accuracy against the debater-judge gap.

Records: :class:`~superalign.records.DebateTranscript` per question, protocol and setup, and a
:class:`~superalign.records.Judgement` per judge of each (a failed judge is recorded, never counted).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class DebateError(ValueError):
    """Bad debate input (an unknown protocol or judge, an unreadable export): one line, before any work."""


PROTOCOLS = ("naive", "consultancy", "debate")
JUDGES = ("simulated", "model")


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    n_questions: int = Field(32, ge=2, description="test questions, each argued under every protocol and setup")
    protocols: list[str] = Field(default_factory=lambda: list(PROTOCOLS))
    rounds: int = Field(2, ge=1, le=6, description="turns per debater (extra rounds added nothing in Kenton et al.)")
    order: Literal["simultaneous", "sequential"] = "simultaneous"
    best_of: list[int] = Field(default_factory=lambda: [1, 3], description="debater setups of the model: best of "
                               "n arguments by the model judge's preference (1: greedy)")
    oracle: bool = Field(True, description="also argue with the oracle debater (the skilled end of the plot)")
    judges: list[str] = Field(default_factory=lambda: list(JUDGES), description="simulated (limited "
                              "understanding), model (the model itself, by log-probabilities)")
    judge_skill: float = Field(0.5, ge=0, le=1, description="P(the simulated judge understands what a quote says)")
    max_new_tokens: int = Field(48, ge=4)
    temperature: float = Field(1.0, gt=0, description="sampling temperature of best-of-n candidates")
    batch_size: int = Field(32, ge=1, description="prompts generated or scored together (32: the debates 10% faster "
                            "than 16 on 2 cores, the same numbers)")
    world_seed: int = 0
    seed: int = 0

    @field_validator("protocols")
    @classmethod
    def _protocols(cls, value: list[str]) -> list[str]:
        unknown = [p for p in value if p not in PROTOCOLS]
        if unknown or not value:
            raise ValueError(f"unknown protocols {', '.join(unknown) or '(none given)'}; choose from "
                             f"{', '.join(PROTOCOLS)}")
        return list(dict.fromkeys(value))

    @field_validator("judges")
    @classmethod
    def _judges(cls, value: list[str]) -> list[str]:
        unknown = [j for j in value if j not in JUDGES]
        if unknown or not value:
            raise ValueError(f"unknown judges {', '.join(unknown) or '(none given)'}; choose from {', '.join(JUDGES)} "
                             "(chat roles are given to `superalign debate --judge URL`)")
        return list(dict.fromkeys(value))

    @field_validator("best_of")
    @classmethod
    def _best_of(cls, value: list[int]) -> list[int]:
        if any(n < 1 for n in value):
            raise ValueError(f"best_of {value}: every n must be at least 1")
        return sorted(set(value))


_LAZY = {"run": "study", "Study": "study", "accuracy_metrics": "study", "studio_verdicts": "study",
         "run_protocol": "protocols", "ModelDebater": "roles", "OracleDebater": "roles", "ChatDebater": "roles",
         "SimulatedJudge": "roles", "ModelJudge": "roles", "ChatJudge": "roles", "judge_view": "prompts"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"superalign.debate.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'superalign.debate' has no attribute {name!r}")


__all__ = ["Config", "DebateError", "JUDGES", "PROTOCOLS", *_LAZY]
