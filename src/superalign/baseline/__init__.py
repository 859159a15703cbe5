"""Stage "baseline": how aligned is the model before we start?

Greedy answers to held-out tasks of the world, scored by the world's gold evaluator:
instruction following (IFEval-style, strict and loose, prompt and instruction level), fact accuracy,
policy violation rate and mean gold reward, each with a bootstrap 95% interval over tasks.
Same shape as every stage (:mod:`superalign.stages`): ``Config``, ``Result``, ``run(config, ctx) -> Result``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from superalign.context import RunContext
from superalign.records import Evaluation, Metric
from superalign.world.instructions import instructions_followed, prompt_followed

STAGE = "baseline"
KINDS = ("instruction", "fact", "policy")

# Profiles: overrides of Config's defaults (smoke: a tiny random model in seconds; quick: the embedded
# model on a 2-core CPU; standard: as quick; full: a GPU, the whole test split).
PROFILES: dict[str, dict] = {
    "smoke": {"n_instruction": 8, "n_fact": 8, "n_policy": 6, "max_new_tokens": 24, "fact_max_new_tokens": 12,
              "n_boot": 200},
    # Batch 64, as the train stage samples: fewer, larger matrix multiplies per token on a 2-core CPU.
    "quick": {"n_instruction": 60, "n_fact": 120, "n_policy": 50, "max_new_tokens": 192, "batch_size": 64},
    "full": {"n_instruction": 200, "n_fact": 136, "n_policy": 160, "max_new_tokens": 512, "batch_size": 32},
}
PROFILES["standard"] = PROFILES["quick"]  # standard differs from quick in the train stage only


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field("smollm2-135m-instruct", description="model name, HF id or local directory")
    seed: int = Field(0, ge=0, description="seed of the task world")
    split: Literal["validation", "test"] = "test"
    n_instruction: int = Field(60, ge=0, description="instruction-following prompts")
    n_fact: int = Field(120, ge=0, description="fact questions")
    n_policy: int = Field(50, ge=0, description="policy prompts that tempt a violation")
    max_new_tokens: int = Field(192, ge=1, le=8192, description="token budget of instruction and policy answers")
    fact_max_new_tokens: int = Field(48, ge=1, le=8192, description="token budget of fact answers")
    batch_size: int = Field(8, ge=1, le=1024)
    n_boot: int = Field(2000, ge=100, description="bootstrap resamples behind each interval")

    @model_validator(mode="after")
    def _fits_the_world(self) -> "Config":
        # Checked here so that a too-large evaluation set fails before any model is loaded.
        from superalign.world import World

        sizes = World(self.seed).sizes()
        for kind in KINDS:
            n, available = getattr(self, f"n_{kind}"), sizes[kind][self.split]
            if n > available:
                raise ValueError(f"n_{kind}={n}, but the {self.split} split holds {available} {kind} tasks")
        return self


class Result(BaseModel):
    model: str
    metrics: list[Metric]
    evaluations: list[Evaluation]
    notes: list[str] = Field(default_factory=list)

    def metric(self, name: str) -> Metric:
        return next(m for m in self.metrics if m.name == name)

    def records(self) -> list[Evaluation]:
        return list(self.evaluations)

    def summary(self) -> dict:
        return {"model": self.model, "metrics": {m.name: m.value for m in self.metrics}}


def _interval_metric(name: str, values, model: str, n_boot: int, seed: int) -> Metric:
    from superalign.stats import bootstrap_ci

    ci = bootstrap_ci(np.asarray(values, dtype=float), n_boot=n_boot, seed=seed)
    return Metric(stage=STAGE, name=name, value=ci.value, ci_low=ci.low, ci_high=ci.high, n=ci.n, model=model)


def _instruction_level_metric(name: str, evals: list[Evaluation], mode: str, model: str,
                              n_boot: int, seed: int) -> Metric:
    """Fraction of single instructions followed; resampled by prompt, since a prompt's instructions
    share one response and are not independent (a cluster bootstrap)."""
    from superalign.stats import ratio_bootstrap_ci

    followed, total = zip(*(instructions_followed(e.details, mode) for e in evals))
    ci = ratio_bootstrap_ci(list(followed), list(total), n_boot=n_boot, seed=seed)
    return Metric(stage=STAGE, name=name, value=ci.value, ci_low=ci.low, ci_high=ci.high, n=int(sum(total)),
                  model=model)


def compute_metrics(evals: list[Evaluation], model: str, n_boot: int = 2000, seed: int = 0) -> list[Metric]:
    """Every baseline number with its bootstrap 95% interval; pure function of the evaluations."""
    by_kind = {k: [e for e in evals if e.kind == k] for k in KINDS}
    out: list[Metric] = []
    ins = by_kind["instruction"]
    if ins:
        for mode in ("strict", "loose"):
            out.append(_interval_metric(f"instruction.prompt_{mode}", [prompt_followed(e.details, mode) for e in ins],
                                        model, n_boot, seed))
            out.append(_instruction_level_metric(f"instruction.instruction_{mode}", ins, mode, model, n_boot, seed))
        strict = [m for m in out if m.name in ("instruction.prompt_strict", "instruction.instruction_strict")]
        # The number model cards quote as "IFEval": mean of prompt- and instruction-level strict accuracy.
        out.append(Metric(stage=STAGE, name="instruction.ifeval_strict_avg", value=float(np.mean([m.value for m in strict])),
                          n=len(ins), model=model, meta={"of": [m.name for m in strict]}))
    if by_kind["fact"]:
        out.append(_interval_metric("fact.accuracy", [e.passed for e in by_kind["fact"]], model, n_boot, seed))
    if by_kind["policy"]:
        out.append(_interval_metric("policy.violation_rate", [not e.passed for e in by_kind["policy"]],
                                    model, n_boot, seed))
    for kind, items in by_kind.items():
        if items:
            out.append(_interval_metric(f"gold.{kind}", [e.gold for e in items], model, n_boot, seed))
    if evals:
        out.append(_interval_metric("gold.mean", [e.gold for e in evals], model, n_boot, seed))
    return out


def run(config: Config, ctx: RunContext | None = None) -> Result:
    """Answer the world's held-out tasks greedily with ``config.model`` and score them against gold."""
    from superalign.evaluation import evaluate_greedy
    from superalign.world import World

    ctx = ctx or RunContext()
    progress = ctx.progress
    world = World(config.seed)
    evaluator = world.evaluator()
    lm = ctx.load(config.model)
    sizes = {"instruction": config.n_instruction, "fact": config.n_fact, "policy": config.n_policy}
    evals: list[Evaluation] = []
    for kind in KINDS:
        tasks = world.tasks(kind, sizes[kind], split=config.split) if sizes[kind] else []
        budget = config.fact_max_new_tokens if kind == "fact" else config.max_new_tokens
        evals += evaluate_greedy(lm, tasks, evaluator, stage=STAGE, max_new_tokens=budget,
                                 batch_size=config.batch_size, progress=progress)
    metrics = compute_metrics(evals, lm.name, n_boot=config.n_boot, seed=config.seed)
    return Result(model=lm.name, metrics=metrics, evaluations=evals)
