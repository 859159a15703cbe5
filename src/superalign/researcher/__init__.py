"""Stage "research": the automated alignment researcher, on weak-to-strong generalization.

A loop proposes an idea (a point of a declared search space: the student's loss, its schedule, its optimization;
:mod:`superalign.researcher.space`), runs it through ``sweep`` on a few search seeds with the generalize stage
reading its tasks from the evaluation server (:mod:`superalign.eval_server`), and keeps it when it beats the best
so far. The proposer is random search, Bayesian optimization (TPE) or any chat role.

Who runs where:

- this process (the harness) starts the evaluation server, which alone holds the held-out labels;
- the agent runs in a process of its own (:mod:`superalign.researcher.agent`) under a sandbox that refuses the
  server's files and the harness's; it learns scores only, through the server's API;
- the harness then checks the best idea against the baseline on fresh seeds the agent never saw, and collects
  every exploit attempt the server and the sandbox logged.

The result is a ``ResearchFinding`` (the claim, its gain over the baseline with an interval over the search seeds
and over the fresh seeds, its cost) that a person reviews in the studio, the log of ``ResearchStep`` records, and
``ExploitAttempt`` records. Not part of the main job: ``superalign research``.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from superalign.context import RunContext
from superalign.records import ExploitAttempt, Metric, ResearchFinding, ResearchStep, read_jsonl
from superalign.researcher.space import W2S_SPACE, Param, baseline, check_idea
from superalign.stages import Inputs

STAGE = "research"

QUICK_TASKS = {"fact": [600, 300], "policy": [800, 320], "instruction": [240, 120], "reward": [240, 120]}
PROFILES: dict[str, dict] = {
    # tiny models, two ideas: the plumbing in seconds
    "smoke": {"profile": "smoke", "tasks": {"fact": [48, 24], "reward": [48, 24]}, "trials": 2, "minutes": 10},
    # the quick profile's weak-to-strong task (its features are cached by the main job). One protocol seed's PGR
    # over the four tasks moves by ±0.5 between seeds (measured): 5 seeds, not 3, for intervals that can exclude 0.
    "quick": {"profile": "quick", "tasks": QUICK_TASKS, "trials": 20, "minutes": 20, "search_seeds": 5,
              "fresh_seeds": 5},
}
PROFILES["standard"] = PROFILES["quick"]


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field("smollm2-135m-instruct", description="the strong model of the weak-to-strong task")
    seed: int = Field(0, ge=0, description="the first search seed, and the proposer's seed")
    profile: Literal["smoke", "quick", "standard", "full"] = Field("quick", description="whose generalize settings "
                                                                    "each experiment starts from")
    proposer: Literal["tpe", "random", "chat"] = Field("tpe", description="tpe (Bayesian optimization), random, "
                                                                         "or chat (with --proposer-role)")
    proposer_role: str | None = Field(None, description="the chat proposer: an OpenAI-compatible endpoint URL or a "
                                                        "local model")
    proposer_model: str | None = Field(None, description="the model an endpoint serves")
    trials: int = Field(12, ge=1, description="ideas to try after the baseline")
    minutes: float = Field(20, gt=0, description="stop proposing once the experiments took this long")
    search_seeds: int = Field(3, ge=3, description="seeds each idea runs on (the agent sees their scores)")
    fresh_seeds: int = Field(3, ge=3, description="seeds the best idea is checked on, never shown to the agent")
    tasks: dict[str, list[int]] = Field(default_factory=lambda: dict(QUICK_TASKS),
                                        description="world tasks the server holds: {name: [pool, test]}")
    world_seed: int | None = Field(None, description="the world the server builds (default: seed); one the agent is "
                                                     "not told closes the route of regenerating the labels")
    base: dict[str, Any] = Field(default_factory=dict, description="generalize settings every experiment shares")
    space: list[Param] = Field(default_factory=lambda: [p.model_copy() for p in W2S_SPACE],
                               description="what an idea may change")
    server_budget: int | None = Field(None, ge=1, description="test-score queries the server answers in all")
    rate_per_minute: int = Field(600, ge=1, description="test-score queries the server answers a minute")


class Result(BaseModel):
    model: str
    metrics: list[Metric]
    notes: list[str] = Field(default_factory=list)
    steps: list[ResearchStep] = Field(default_factory=list)
    finding: ResearchFinding | None = None
    exploits: list[ExploitAttempt] = Field(default_factory=list)
    usage: dict[str, Any] = Field(default_factory=dict)
    seconds: float = 0.0

    def records(self) -> list:
        return [*self.steps, *([self.finding] if self.finding else []), *self.exploits]

    def summary(self) -> dict:
        return {"model": self.model, "steps": len(self.steps), "finding": self.finding.model_dump() if self.finding
                else None, "exploit_attempts": len(self.exploits), "usage": self.usage, "notes": self.notes,
                "seconds": round(self.seconds, 1)}


def generalize_config(config: Config):
    """The generalize stage's config every experiment starts from: the profile's, with ``base``."""
    from superalign.config import load_config

    overrides = [f"generalize.{k}={json.dumps(v)}" for k, v in config.base.items()]
    return load_config(config.profile, overrides=overrides, model=config.model).generalize


def inputs(config: Config) -> Inputs:
    """Every model the experiments load (the strong model, the weak supervisor): pulled before the agent starts,
    which cannot."""
    models = generalize_config(config).model_names()
    role = config.proposer_role if config.proposer == "chat" else None
    if role and not role.startswith(("http://", "https://", "organism:")):  # a local chat proposer: known, pulled
        models = [*models, role]
    return Inputs(models=list(dict.fromkeys(models)))


def resolved_space(config: Config) -> list[Param]:
    """The space with each default read from the generalize config every experiment starts from (the profile and
    ``base``), so that the baseline idea is that config unchanged, whatever the profile sets (smoke trains its
    students 4 epochs, not the 60 the space's own default says). A student setting the config leaves unset is the
    stage's training setting (the students inherit it)."""
    section = generalize_config(config)
    space = []
    for param in config.space:
        head, _, name = param.key.partition(".")
        if head == "student":
            value = getattr(section.student, name, None)
            value = getattr(section.train, name) if value is None else value
        elif name and hasattr(getattr(section, head, None), name):
            value = getattr(getattr(section, head), name)
        elif param.key == "methods":  # an idea has one method; the config lists them (the default: several)
            value = section.methods[0] if len(section.methods) == 1 else param.default
        else:
            value = getattr(section, param.key, param.default)
        if value != param.default:
            try:
                param = Param(**{**param.model_dump(), "default": value})
            except ValueError:
                raise ValueError(f"research.space: {param.key} is {value} in profile {config.profile}, outside the "
                                 f"space's range; widen it") from None
        space.append(param)
    return space


def check(config: Config, pipeline) -> None:
    if config.proposer == "chat" and not config.proposer_role:
        raise ValueError("research.proposer chat needs research.proposer_role (an endpoint URL or a model)")
    if (config.proposer == "chat" and config.proposer_role.startswith(("http://", "https://"))
            and not config.proposer_model):
        raise ValueError(f"research.proposer_role {config.proposer_role}: say which model the endpoint serves "
                         "(--proposer-model NAME)")
    space = resolved_space(config)
    check_idea(space, baseline(space))
    from superalign.world.binary import WORLD_TASKS

    unknown = [t for t in config.tasks if t not in WORLD_TASKS]
    if unknown or any(len(v) != 2 for v in config.tasks.values()):
        raise ValueError(f"research.tasks: world tasks {', '.join(WORLD_TASKS)}, each [pool, test]")


def run(config: Config, ctx: RunContext | None = None) -> Result:
    """The harness: the server, the agent's process, then the fresh-seed check (see the module docstring)."""
    import tempfile

    from superalign.eval_server import ServerConfig
    from superalign.eval_server.process import ServerProcess
    from superalign.researcher.experiment import Setup

    start = time.monotonic()
    ctx = ctx or RunContext()
    work = (ctx.work_dir or Path(tempfile.mkdtemp(prefix="superalign-research-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    server = ServerConfig(work / "server", config.seed if config.world_seed is None else config.world_seed,
                          {k: tuple(v) for k, v in config.tasks.items()}, config.rate_per_minute, config.server_budget)
    search = [config.seed + i for i in range(config.search_seeds)]
    fresh = [config.seed + 1000 + i for i in range(config.fresh_seeds)]  # far from any search seed
    # The harness's own folder, forbidden to the agent like the server's: the sandbox's exploit log, and the
    # fresh-seed check's runs and stage store, which the agent could otherwise fill in advance with finished
    # stages of its choosing (the store reuses any finished stage whose key matches).
    (work / "harness").mkdir(exist_ok=True)
    with ServerProcess(server) as url:
        setup = Setup(url, str(work / "runs"), config.profile, config.model, ctx.device, list(config.tasks),
                      dict(config.base))
        steps = _run_agent(config, setup, work, search, ctx)
        fresh_setup = dataclasses.replace(setup, root=str(work / "harness" / "runs"))
        finding = _finding(config, fresh_setup, steps, search, fresh, ctx)
        from superalign.world.remote import EvalClient

        with EvalClient(url) as client:
            usage = client.usage()
    exploits = _exploits(work)
    if finding is not None:
        finding.cost.update(server_queries=usage["queries"], test_score_queries=usage["score_queries"])
    return Result(model=config.model, metrics=_metrics(config, steps, finding, exploits), steps=steps, finding=finding,
                  exploits=exploits, usage=usage, notes=_notes(steps, finding, exploits),
                  seconds=time.monotonic() - start)


def _run_agent(config: Config, setup, work: Path, seeds: list[int], ctx: RunContext) -> list[ResearchStep]:
    """Start the agent's process and follow its steps until it exits."""
    steps_path = work / "steps.jsonl"
    spec = {"setup": json.loads(setup.to_json()), "forbidden": [str(work / "server"), str(work / "harness")],
            "sandbox_report": str(work / "harness" / "sandbox-exploits.jsonl"), "steps": str(steps_path), "seeds": seeds,
            "trials": config.trials, "minutes": config.minutes, "proposer": config.proposer,
            "proposer_role": config.proposer_role, "proposer_model": config.proposer_model, "seed": config.seed,
            "space": [p.model_dump() for p in resolved_space(config)]}
    (work / "agent.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
    advance = ctx.progress.task(f"{STAGE}: experiments ({len(seeds)} seeds each)", config.trials + 1)
    done = 0
    with (work / "agent.log").open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "superalign.researcher.agent", str(work / "agent.json")],
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            while proc.poll() is None:
                time.sleep(1)
                done = _follow(steps_path, done, advance, ctx)
        finally:  # an error or Ctrl-C here must not leave the agent running against a closing server
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    _follow(steps_path, done, advance, ctx)
    if proc.returncode != 0:
        tail = (work / "agent.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"the researcher's agent failed ({proc.returncode}): {' '.join(tail)}; see {work / 'agent.log'}")
    return read_jsonl(steps_path, ResearchStep)


def _follow(path: Path, done: int, advance, ctx: RunContext) -> int:
    steps = read_jsonl(path, ResearchStep) if path.is_file() else []
    for step in steps[done:]:
        value = "failed" if step.value is None else f"{step.value:.3f}"
        ctx.log(f"{STAGE}: step {step.step} {json.dumps(step.idea, sort_keys=True)} -> {value}"
                + (" (kept)" if step.kept else ""))
        advance(1)
    return max(done, len(steps))


def _finding(config: Config, setup, steps: list[ResearchStep], search: list[int], fresh: list[int],
             ctx: RunContext) -> ResearchFinding | None:
    """The best idea against the baseline, paired by seed: on the search seeds (from the log) and on fresh seeds
    (run here, by the harness, under `setup`'s root, which the agent cannot reach: it never sees them)."""
    from superalign.researcher.experiment import evaluate
    from superalign.stats import finite_or_none, mean_ci_over_seeds

    base = next((s for s in steps if s.step == 0 and s.value is not None), None)
    scored = [s for s in steps if s.value is not None and s.step > 0]
    if base is None or not scored:
        return None
    best = max(scored, key=lambda s: s.value)
    ctx.log(f"{STAGE}: checking step {best.step} against the baseline on fresh seeds {fresh}")
    fresh_best, seconds_best, _ = evaluate(setup, best.idea, fresh)
    fresh_base, seconds_base, _ = evaluate(setup, base.idea, fresh)
    search_diff = [best.per_seed[str(s)] - base.per_seed[str(s)] for s in search]
    fresh_diff = [fresh_best[s] - fresh_base[s] for s in fresh if fresh_best[s] is not None and fresh_base[s] is not None]
    s_ci = mean_ci_over_seeds(search_diff)
    f_ci = mean_ci_over_seeds(fresh_diff) if fresh_diff else None
    changed = {k: v for k, v in best.idea.items() if v != base.idea.get(k)}
    # Held: the fresh-seed interval excludes 0 on the side the search claimed (too few scored seeds: unknown).
    held = None if f_ci is None or f_ci.low != f_ci.low else bool(f_ci.low > 0 if s_ci.value > 0 else f_ci.high < 0)
    return ResearchFinding(
        id=f"research-{config.seed}-step{best.step}", idea=best.idea, objective=best.objective,
        claim=f"changing {', '.join(f'{k} to {_short(v)}' for k, v in changed.items()) or 'nothing'} moves the "
              f"weak-to-strong PGR by {s_ci.value:+.3f} over the baseline on the search seeds",
        search_seeds=search, search_gain=s_ci.value, search_ci=[finite_or_none(s_ci.low), finite_or_none(s_ci.high)],
        fresh_seeds=fresh, fresh_gain=f_ci.value if f_ci else None,
        fresh_ci=[finite_or_none(f_ci.low), finite_or_none(f_ci.high)] if f_ci else [None, None], held=held,
        cost={"steps": len(steps), "runs": len(steps) * len(search) + 2 * len(fresh),
              "seconds": round(sum(s.seconds for s in steps) + seconds_best + seconds_base, 1)},
        per_seed={"search": {"idea": best.per_seed, "baseline": base.per_seed},
                  "fresh": {"idea": {str(k): v for k, v in fresh_best.items()},
                            "baseline": {str(k): v for k, v in fresh_base.items()}, "diff": fresh_diff}})


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else json.dumps(value)


def _exploits(work: Path) -> list[ExploitAttempt]:
    found = []
    for path in (work / "server" / "exploits.jsonl", work / "harness" / "sandbox-exploits.jsonl"):
        if path.is_file():
            found += read_jsonl(path, ExploitAttempt)
    return found


def _metrics(config: Config, steps: list[ResearchStep], finding: ResearchFinding | None,
             exploits: list[ExploitAttempt]) -> list[Metric]:
    def metric(name: str, value: float, low=None, high=None, n=None) -> Metric:
        return Metric(stage=STAGE, name=name, value=value, ci_low=low, ci_high=high, n=n, model=config.model,
                      meta={"rate": False})

    out = [metric("research.steps", float(len(steps))), metric("research.exploit_attempts", float(len(exploits)))]
    base = next((s for s in steps if s.step == 0 and s.value is not None), None)
    if base is not None:
        out.append(metric("research.baseline.pgr", base.value, base.ci_low, base.ci_high, config.search_seeds))
    if finding is not None:
        best = max((s for s in steps if s.value is not None and s.step > 0), key=lambda s: s.value)
        out += [metric("research.best.pgr", best.value, best.ci_low, best.ci_high, config.search_seeds),
                metric("research.best.search_gain", finding.search_gain, *finding.search_ci, len(finding.search_seeds))]
        if finding.fresh_gain is not None:
            scored = finding.per_seed["fresh"]["diff"]
            out.append(metric("research.best.fresh_gain", finding.fresh_gain, *finding.fresh_ci, len(scored)))
    return out


def _notes(steps: list[ResearchStep], finding: ResearchFinding | None, exploits: list[ExploitAttempt]) -> list[str]:
    notes = []
    if finding is None:
        notes.append("no idea was scored beside the baseline: no finding")
    elif finding.held is False:
        notes.append(f"the best idea's gain did not hold on fresh seeds (fresh gain {finding.fresh_gain:+.3f})")
    if exploits:
        notes.append(f"{len(exploits)} exploit attempt(s) logged: see the research section")
    failed = [s.step for s in steps if s.value is None]
    if failed:
        notes.append(f"step(s) {', '.join(map(str, failed))} gave no score (failed, or a gap too small)")
    return notes


__all__ = ["Config", "PROFILES", "Result", "STAGE", "run"]
