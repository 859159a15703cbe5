"""Who proposes the next idea: random search, Bayesian optimization (optuna's TPE), or any chat role.

A proposer sees the search space and the history (each idea and its score over the search seeds) and returns
``(idea, rationale)``. It never sees a label, a test example or a fresh seed.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from superalign.records import ResearchStep
from superalign.researcher.space import Param, check_idea


class RandomProposer:
    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def propose(self, space: list[Param], history: list[ResearchStep]) -> tuple[dict[str, Any], str]:
        rng = random.Random(f"{self.seed}:{len(history)}")  # the same history, the same idea: resumable
        return {p.key: p.sample(rng) for p in space}, "a random point of the space"


class TPEProposer:
    """Tree-structured Parzen estimator (optuna): random for the first ``startup`` ideas, then models which
    region scores high."""

    name = "tpe"

    def __init__(self, seed: int = 0, startup: int = 4):
        self.seed, self.startup = seed, startup

    def propose(self, space: list[Param], history: list[ResearchStep]) -> tuple[dict[str, Any], str]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        dists = {p.key: _distribution(p) for p in space}
        sampler = optuna.samplers.TPESampler(seed=self.seed + len(history), n_startup_trials=self.startup)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for step in history:
            if step.value is not None:
                study.add_trial(optuna.trial.create_trial(params=step.idea, distributions=dists, value=step.value))
        trial = study.ask(dists)
        scored = sum(s.value is not None for s in history)
        why = "random start" if scored < self.startup else f"TPE over {scored} scored ideas"
        return {p.key: trial.params[p.key] for p in space}, why


def _distribution(p: Param):
    import optuna.distributions as D

    if p.kind == "choice":
        return D.CategoricalDistribution(p.choices)
    if p.kind == "int":
        return D.IntDistribution(int(p.low), int(p.high))
    return D.FloatDistribution(p.low, p.high, log=p.kind == "log")


PROMPT = """You are an alignment researcher improving weak-to-strong generalization: a strong student model learns \
from a weaker supervisor's labels, and the score is the performance gap recovered (PGR, higher is better) averaged \
over {n_seeds} seeds.

You may change these settings of the student (one JSON value each):
{space}

Experiments so far (settings -> PGR; the first is the unchanged baseline):
{history}

Propose the next experiment. Answer with one JSON object and nothing else:
{{"idea": {{"<setting>": <value>, ...}}, "rationale": "<one sentence: why this might raise PGR>"}}"""


class ChatProposer:
    """Any chat role (a local model or an OpenAI-compatible endpoint) asked for the next idea in JSON. A reply
    that does not parse, or names a value outside the space, is retried; after that the idea is random and its
    rationale says so."""

    def __init__(self, role, seed: int = 0, n_seeds: int = 3):
        self.role, self.seed, self.n_seeds = role, seed, n_seeds
        self.name = f"chat:{getattr(role, 'name', 'role')}"

    def propose(self, space: list[Param], history: list[ResearchStep]) -> tuple[dict[str, Any], str]:
        from superalign.models.chat import ask

        prompt = PROMPT.format(n_seeds=self.n_seeds, space="\n".join(_describe(p) for p in space),
                               history="\n".join(_line(s) for s in history) or "(none yet)")
        reply = ask(self.role, [{"role": "user", "content": prompt}], parse=lambda raw: _parse(space, raw),
                    max_new_tokens=300)
        if reply.ok:
            return reply.value
        idea, _ = RandomProposer(self.seed).propose(space, history)
        return idea, f"the proposer's reply did not give a valid idea ({reply.error[:200]}); a random idea instead"


def _describe(p: Param) -> str:
    values = f"one of {json.dumps(p.choices)}" if p.kind == "choice" else \
        f"{'an integer ' if p.kind == 'int' else ''}from {p.low:g} to {p.high:g}{' (log scale)' if p.kind == 'log' else ''}"
    return f"- {p.key}: {values}; baseline {json.dumps(p.default)}. {p.about}"


def _line(step: ResearchStep) -> str:
    score = "failed" if step.value is None else f"{step.value:.3f}"
    return f"- {json.dumps(step.idea, sort_keys=True)} -> {score}"


def _parse(space: list[Param], raw: str) -> tuple[dict[str, Any], str]:
    match = re.search(r"\{.*\}", raw, re.DOTALL)
    if not match:
        raise ValueError("no JSON object in the reply")
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON: {err}") from None
    idea = data.get("idea") if isinstance(data, dict) else None
    if not isinstance(idea, dict):
        raise ValueError("the reply has no 'idea' object")
    return check_idea(space, idea), str(data.get("rationale", ""))[:500]


def make_proposer(kind: str, seed: int, role=None, n_seeds: int = 3):
    """``random``, ``tpe``, or ``chat`` with ``role``."""
    if kind == "random":
        return RandomProposer(seed)
    if kind == "tpe":
        return TPEProposer(seed)
    if role is None:
        raise ValueError("the chat proposer needs a role (--proposer-role URL or model)")
    return ChatProposer(role, seed, n_seeds)


__all__ = ["ChatProposer", "RandomProposer", "TPEProposer", "make_proposer"]
