"""Critiques that help a weaker judge find flaws (Saunders et al. 2022; CriticGPT).

``run(config, lm)``:

1. responses with planted flaws from the world (:mod:`superalign.world.flaws`: false facts, broken
   instructions, policy violations, bugs in coding tasks with hidden tests), each flaw with its location and
   category, and clean responses beside them;
2. critics write critiques that quote the flawed span and name its category: the model as it is (untrained),
   the model after LoRA SFT on the world's critiques of the train split (the trained critic), the oracle (the
   world's own critique: the ceiling), or any chat role (a bigger local model, an OpenAI-compatible endpoint);
3. judges of limited ability look for flaws with and without each critic's critique: a simulated judge that
   reads only the first ``k`` sentences unless a critique points elsewhere, and the model itself asked whether
   the response is flawed (a weaker judge: it reads everything but understands little);
4. scored against the known flaws: flaws found per response with and without critiques (paired), planted-flaw
   detection, false flags, critique helpfulness, and the generator-discriminator-critique gap.

Records: :class:`~superalign.records.Critique` per critic and response, the judges' :class:`Judgement` and
:class:`Flaw` records (the shape the studio exports, so people's assistance studies score with the same code).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class CritiqueError(ValueError):
    """Bad critique input (an unknown critic or flaw kind, an unreadable export): one line, before any work."""


class Adapter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: str = "lora"
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | str = "all-linear"


class Training(BaseModel):
    """LoRA SFT of the critic on the world's critiques of the train split."""

    model_config = ConfigDict(extra="forbid")
    n_train: int = Field(120, ge=2, description="responses (flawed and clean) whose critiques it trains on")
    lr: float = Field(1e-3, gt=0)
    epochs: int = Field(2, ge=1)
    batch_size: int = Field(4, ge=1, description="4 keeps the stage's peak memory near the train stage's")
    max_length: int = Field(384, ge=16)
    seed: int = 0
    max_grad_norm: float | None = Field(1.0, gt=0)
    adapter: Adapter = Field(default_factory=Adapter)


class Judge(BaseModel):
    """The simulated judge of limited attention (see :class:`superalign.critique.judges.LimitedJudge`)."""

    model_config = ConfigDict(extra="forbid")
    k: int = Field(2, ge=0, description="sentences (lines of code) it reads from the top")
    p_detect: float = Field(0.8, ge=0, le=1, description="P(it notices a flaw in a sentence it reads)")
    p_verify: float = Field(0.9, ge=0, le=1, description="P(it confirms a flaw a critique points it to)")
    p_misled: float = Field(0.2, ge=0, le=1, description="P(it accepts a critique pointing at a clean sentence)")
    p_false: float = Field(0.02, ge=0, le=1, description="P(it flags a clean sentence it reads on its own)")
    seed: int = 0


CRITICS = ("model", "trained", "oracle")


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    critics: list[str] = Field(default_factory=lambda: ["model", "trained", "oracle"],
                               description="model (the model as it is), trained (after LoRA SFT on critiques), "
                               "oracle (the world's own critique: the ceiling)")
    kinds: list[str] = Field(default_factory=lambda: ["fact", "instruction", "policy", "code"])
    n_test: int = Field(48, ge=4, description="test responses (flawed and clean) critiqued and judged")
    flawed_fraction: float = Field(0.75, gt=0, lt=1)
    decision: Literal["calibrated", "greedy"] = Field("calibrated", description="how a model critic decides "
                                                     "whether to claim a flaw: its P(Quote) against a threshold fitted "
                                                     "on the train split, then a forced quote; or greedy decoding")
    max_new_tokens: int = Field(48, ge=8)
    batch_size: int = Field(16, ge=1, description="prompts generated or scored together (32 made the stage slower on "
                            "2 cores: the judge's forwards over long critique prompts cost more per row)")
    training: Training = Field(default_factory=Training)
    judge: Judge = Field(default_factory=Judge)
    model_judge: bool = Field(True, description="also ask the model itself whether each response is flawed, "
                              "with and without each critique (a weaker judge; and the discriminator of the gap)")
    generator: bool = Field(True, description="measure the generator side of the gap: the model's own answers "
                            "to the test prompts, scored by the world (hidden tests for code)")
    world_seed: int = 0
    seed: int = 0

    @field_validator("critics")
    @classmethod
    def _known_critics(cls, critics: list[str]) -> list[str]:
        unknown = [c for c in critics if c not in CRITICS]
        if unknown:
            raise ValueError(f"unknown critics {', '.join(unknown)}; choose from {', '.join(CRITICS)} (chat "
                             "roles are given to `superalign critique --critic URL`)")
        if not critics:
            raise ValueError("critics is empty: name at least one of " + ", ".join(CRITICS))
        return list(dict.fromkeys(critics))

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        from superalign.world.flaws import KINDS

        unknown = [k for k in kinds if k not in KINDS]
        if unknown or not kinds:
            raise ValueError(f"unknown flaw kinds {', '.join(unknown) or '(none given)'}; choose from {', '.join(KINDS)}")
        return kinds


# The implementation imports torch: loaded on first use, so that reading a pipeline config stays light.
_LAZY = {"run": "study", "Study": "study", "score_judgements": "study", "critique_metrics": "study",
         "LimitedJudge": "judges", "ModelCritic": "critics", "ChatCritic": "critics", "OracleCritic": "critics",
         "train_critic": "critics", "critic_messages": "prompts", "parse_critique": "prompts"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"superalign.critique.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'superalign.critique' has no attribute {name!r}")


__all__ = ["Adapter", "CRITICS", "Config", "CritiqueError", "Judge", "Training", *_LAZY]
