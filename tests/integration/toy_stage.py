"""A throwaway stage for the tests: everything a stage is, in one module and nothing else.

It reads an optional text file (an input, hashed into its cache key), counts how often it ran, and writes
one Evaluation record per item and two metrics.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from superalign.context import RunContext
from superalign.records import Evaluation, Metric
from superalign.stages import Inputs

STAGE = "toy"
PROFILES = {"smoke": {"n_items": 3}}
RUNS: list[dict] = []  # one entry per call of run(): what the test checks for caching


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = Field(0, ge=0)
    n_items: int = Field(2, ge=1, description="items to score")
    path: Path | None = Field(None, description="a text file whose lines are appended to the items")


class Result(BaseModel):
    model: str = "toy"
    metrics: list[Metric]
    evaluations: list[Evaluation]
    notes: list[str] = Field(default_factory=list)

    def records(self) -> list:
        return list(self.evaluations)

    def summary(self) -> dict:
        return {"items": len(self.evaluations)}


def inputs(config: Config) -> Inputs:
    return Inputs(files=[config.path] if config.path is not None else [])


def plan(config: Config) -> list[str]:
    return [f"will score {config.n_items} items"]  # said before any stage starts, when this one will run


def run(config: Config, ctx: RunContext | None = None) -> Result:
    ctx = ctx or RunContext()
    RUNS.append({"n_items": config.n_items, "device": ctx.device})
    extra = Path(config.path).read_text(encoding="utf-8").splitlines() if config.path else []
    texts = [f"item {i}" for i in range(config.n_items)] + extra
    advance = ctx.progress.task("toy: scoring", len(texts))
    evals = []
    for i, text in enumerate(texts):
        evals.append(Evaluation(stage=STAGE, model="toy", task_id=f"toy-{i}", kind="toy", category="toy",
                                prompt=[{"role": "user", "content": text}], response=text, gold=(i % 2) * 1.0,
                                passed=bool(i % 2)))
        advance(1)
    gold = sum(e.gold for e in evals) / len(evals)
    metrics = [Metric(stage=STAGE, name="toy.gold", value=gold, n=len(evals)),
               Metric(stage=STAGE, name="toy.items", value=float(len(evals)), meta={"rate": False})]
    return Result(metrics=metrics, evaluations=evals)
