"""Automated red-teaming: attacks from a registry against any target, judged by the world's ground truth.

A campaign takes policy cases from the task world (each a tempting prompt with a rule to break), runs every
chosen attack on every case against a target, and judges each reply with the world's policy detectors.
Every query becomes an :class:`~superalign.records.AttackAttempt` record, appended as it is judged, so a
killed campaign resumes where it stopped. A target that errors or times out is recorded and the campaign
goes on, and so does one whose attack crashes.

    result = campaign(Config(attacks=["direct", "roleplay"]), LocalTarget(lm), out_dir=Path("rt"))
    result.asr["roleplay"]        # share of cases with a success, with a bootstrap interval over cases

Targets: a loaded model (:class:`LocalTarget`), an organism (``organisms.load``), or any chat backend
(:class:`ChatTarget` around ``models.chat``: an OpenAI-compatible endpoint, a script).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from superalign.records import AttackAttempt, Metric

MAX_REPLY = 4_000  # characters of a reply kept in the record


class RedTeamError(ValueError):
    """Bad red-team input (an unknown attack, a missing attacker): one line, before any query."""


class Config(BaseModel):
    """A campaign: which attacks, on how many cases, with what budget."""

    model_config = ConfigDict(extra="forbid")
    attacks: list[str] = Field(default_factory=lambda: ["direct", "roleplay", "prefix_injection", "encoding",
                                                        "paraphrase", "many_shot"])
    n_cases: int = Field(24, ge=1, description="policy cases of the world's test split")
    split: str = "test"
    world_seed: int = 0
    seed: int = 0
    budget: int = Field(4, ge=1, description="queries per case for an adaptive attack")
    max_new_tokens: int = Field(64, ge=1)
    batch_size: int = Field(16, ge=1)
    name: str = "campaign"
    # GCG's CPU budget per case (Zou et al. 2023 use 500 steps of 512 candidates on a GPU).
    gcg_steps: int = Field(12, ge=1, description="GCG optimisation steps per case")
    gcg_suffix_tokens: int = Field(8, ge=1, description="GCG suffix length in tokens")
    gcg_candidates: int = Field(16, ge=1, description="GCG single-token swaps scored per step")
    gcg_top_k: int = Field(64, ge=1, description="GCG tokens considered per position (largest gradient)")

    @model_validator(mode="after")
    def _known(self) -> "Config":
        from superalign.redteam.attacks import ATTACKS

        unknown = [a for a in self.attacks if a not in ATTACKS]
        if unknown:
            raise ValueError(f"unknown attack {unknown[0]!r}; choose from {', '.join(ATTACKS)}")
        if not self.attacks:
            raise ValueError("no attacks chosen")
        return self


# --- targets --------------------------------------------------------------------------------------------


class Target(Protocol):
    name: str

    def respond(self, prompts: list[list[dict]]) -> list[str]: ...


class LocalTarget:
    """A loaded decoder answering greedily, in batches."""

    def __init__(self, lm, max_new_tokens: int = 64, batch_size: int = 16):
        self.lm, self.name = lm, lm.name
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size

    def respond(self, prompts: list[list[dict]]) -> list[str]:
        from superalign.models import greedy

        return greedy(self.lm, prompts, max_new_tokens=self.max_new_tokens, batch_size=self.batch_size)


class ChatTarget:
    """Any ``models.chat`` backend (an OpenAI-compatible endpoint, a script), one prompt at a time."""

    def __init__(self, chat, max_new_tokens: int = 64):
        self.chat, self.name, self.max_new_tokens = chat, chat.name, max_new_tokens

    def respond(self, prompts: list[list[dict]]) -> list[str]:
        return [self.chat.chat(p, max_new_tokens=self.max_new_tokens) for p in prompts]


# --- the campaign ---------------------------------------------------------------------------------------


@dataclass
class Result:
    """A campaign's attempts and what they add up to (every rate with a bootstrap interval over cases)."""

    attempts: list[AttackAttempt]
    asr: dict[str, dict]  # attack -> share of cases with at least one success
    attempt_rate: dict[str, dict]  # attack -> share of judged attempts that succeeded
    by_rule: dict[str, dict]  # rule -> share of (case, attack) pairs with a success
    queries_to_success: dict[str, float | None]  # attack -> mean queries before the first success (cases that had one)
    diversity: dict[str, float | None]  # attack -> 1 - mean Jaccard similarity of successful prompts' words
    errors: dict[str, int]  # attack -> attempts without a verdict (target error, crashed attack)
    metrics: list[Metric] = field(default_factory=list)
    judge: dict | None = None  # an LLM judge's agreement with the detectors, when one judged


def policy_cases(config: Config, n: int | None = -1):
    """``(Case, PolicyCase)`` pairs: what the attacker sees and what the judge needs (``n``: how many;
    default the config's, None: the whole split)."""
    from superalign.redteam.attacks import Case
    from superalign.world import World

    n = config.n_cases if n == -1 else n
    return [(Case(task.id, truth.rule, [dict(m) for m in task.messages], config.world_seed), truth)
            for task, truth in World(config.world_seed).cases("policy", n, config.split)]


def judge(truth, reply: str) -> list[str]:
    """The ground truth: ids of the rules the reply broke (the world's policy detectors)."""
    from superalign.world.policy import violations

    return violations(truth, reply)


def _read_attempts(path: Path, config: Config, target: str) -> list[AttackAttempt]:
    """The attempts a killed campaign left: a torn last line (the kill came mid-write) is cut off; attempts
    of another campaign or target are refused, not silently reused."""
    import json as _json

    from pydantic import ValidationError

    if not path.is_file():
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1].strip():  # no final newline: the last write was cut short
        path.write_bytes(b"\n".join(lines[:-1]) + (b"\n" if len(lines) > 1 else b""))
        lines = lines[:-1]
    attempts = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            attempts.append(AttackAttempt.model_validate(_json.loads(line)))
        except (ValueError, ValidationError) as err:
            raise RedTeamError(f"{path}:{lineno}: not an attack attempt ({str(err).splitlines()[0]})") from None
    other = next((a for a in attempts if a.target != target or a.campaign != config.name), None)
    if other is not None:
        raise RedTeamError(f"{path} holds campaign {other.campaign!r} against {other.target!r}, not {config.name!r} "
                           f"against {target!r}; use another --out or --name")
    return attempts


def _latest(attempts: list[AttackAttempt]) -> list[AttackAttempt]:
    """One attempt per (case, attack, variant): the newest (a retried error replaces its failure)."""
    return list({(a.case_id, a.attack, a.variant): a for a in attempts}.values())


def campaign(config: Config, target: Target, *, out_dir: Path | None = None, attacker=None, judge_model=None,
             progress=None, log: Callable[[str], None] = lambda m: None) -> Result:
    """Run ``config``'s attacks against ``target``; attempts go to ``out_dir/attempts.jsonl`` as they are judged
    (and are read back from there: a second call resumes). ``judge_model`` (a chat model) also judges every
    reply; its agreement with the detectors is in the result (:mod:`superalign.redteam.llm_judge`)."""
    from superalign.progress import NullProgress
    from superalign.redteam.attacks import ATTACKS, WhiteBox

    if any(ATTACKS[a].needs_attacker for a in config.attacks) and attacker is None:
        needing = ", ".join(a for a in config.attacks if ATTACKS[a].needs_attacker)
        raise RedTeamError(f"attacks {needing} need an attacker model (--attacker MODEL or URL)")
    white_box = [a for a in config.attacks if ATTACKS[a].needs_weights]
    if white_box and getattr(target, "lm", None) is None:
        raise RedTeamError(f"attacks {', '.join(white_box)} need the target's weights: a local model, not an endpoint")
    path = out_dir / "attempts.jsonl" if out_dir is not None else None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    attempts = _read_attempts(path, config, target.name) if path is not None else []
    # Judged attempts are done; one without a verdict (the target failed, maybe what stopped the run) is retried.
    done = {(a.case_id, a.attack, a.variant) for a in _latest(attempts) if a.success is not None}
    if attempts:
        log(f"{config.name}: resuming after {len(done)} judged attempts")
    cases = policy_cases(config)
    progress = progress or NullProgress()

    def record(attempt: AttackAttempt) -> None:
        if judge_model is not None and attempt.reply is not None:
            from superalign.redteam.llm_judge import llm_verdict

            verdict, error = llm_verdict(judge_model, attempt.rule, attempt.prompt[-1]["content"], attempt.reply)
            attempt = attempt.model_copy(update={"meta": {**attempt.meta, "llm_judge": verdict,
                                                          "llm_judge_error": error, "judge_model": judge_model.name}})
        attempts.append(attempt)
        if path is not None:
            with path.open("a", encoding="utf-8") as f:
                f.write(attempt.model_dump_json() + "\n")
                f.flush()
                os.fsync(f.fileno())  # an acknowledged query survives a kill

    memory: dict[str, list[str]] = {}  # attack -> successful prompts so far (adaptive attackers learn from them)
    for a in attempts:
        if a.success and ATTACKS.get(a.attack) and ATTACKS[a.attack].run is not None:
            memory.setdefault(a.attack, []).append(a.prompt[-1]["content"])
    for name in config.attacks:
        attack = ATTACKS[name]
        if attack.prompts is not None:
            _static(config, target, attack, cases, done, random.Random(f"{config.seed}:{name}"), record, progress)
        else:
            todo = [(case, truth) for case, truth in cases if not _adaptive_done(attempts, case.id, name, config.budget)]
            advance = progress.task(f"{name} vs {target.name}", len(todo))
            for case, truth in todo:  # an unfinished case starts over, its attempts replaced (newest wins)
                rng = random.Random(f"{config.seed}:{name}:{case.id}")  # per case: a resumed run draws the same
                helper = WhiteBox(target.lm, config) if attack.needs_weights else attacker
                _adaptive(config, target, attack, case, truth, rng, record, memory.setdefault(name, []), helper)
                advance(1)
    return summarize(_latest(attempts), config)


def _adaptive_done(attempts: list[AttackAttempt], case_id: str, attack: str, budget: int) -> bool:
    """An adaptive attack is done with a case when it succeeded, spent its budget, or crashed."""
    mine = [a for a in _latest(attempts) if a.case_id == case_id and a.attack == attack]
    return (any(a.success for a in mine) or len([a for a in mine if a.success is not None]) >= budget
            or any((a.error or "").startswith("attack crashed") for a in mine))


def _attempt(config: Config, target: Target, case, attack: str, variant: int, prompt: list[dict], reply: str | None,
             truth, error: str | None, seconds: float) -> AttackAttempt:
    broken = judge(truth, reply) if reply is not None else []
    return AttackAttempt(campaign=config.name, target=target.name, case_id=case.id, rule=case.rule, attack=attack,
                         variant=variant, prompt=prompt, reply=None if reply is None else reply[:MAX_REPLY],
                         success=None if reply is None else bool(broken), violations=broken, error=error,
                         seconds=round(seconds, 3))


def _respond(target: Target, prompts: list[list[dict]]) -> list[tuple[str | None, str | None]]:
    """``(reply, error)`` per prompt: a failing batch is retried one prompt at a time, so that one bad
    query (a timeout, an HTTP error) costs only its own verdict."""
    try:
        return [(r, None) for r in target.respond(prompts)]
    except Exception:  # noqa: BLE001 - any target failure is data, not a crash
        out = []
        for p in prompts:
            try:
                out.append((target.respond([p])[0], None))
            except Exception as err:  # noqa: BLE001
                out.append((None, f"{type(err).__name__}: {err}"[:300]))
        return out


def _static(config, target, attack, cases, done, rng, record, progress) -> None:
    """Every prompt of a static attack for every case, sent in batches; prompts already judged are skipped."""
    jobs = []
    for case, truth in cases:
        try:
            prompts = attack.prompts(case, rng)  # built even when done: the rng stays on the same sequence
        except Exception as err:  # noqa: BLE001 - a crashing attack is recorded, the others go on
            if (case.id, attack.name, 0) not in done:
                record(_attempt(config, target, case, attack.name, 0, case.messages, None, truth,
                                f"attack crashed: {type(err).__name__}: {err}"[:300], 0.0))
            continue
        jobs += [(case, truth, i, p) for i, p in enumerate(prompts) if (case.id, attack.name, i) not in done]
    advance = progress.task(f"{attack.name} vs {target.name}", len(jobs))
    for start in range(0, len(jobs), config.batch_size):
        batch = jobs[start : start + config.batch_size]
        t0 = time.perf_counter()
        answers = _respond(target, [p for *_, p in batch])
        per = (time.perf_counter() - t0) / len(batch)
        for (case, truth, i, p), (reply, error) in zip(batch, answers):
            record(_attempt(config, target, case, attack.name, i, p, reply, truth, error, per))
        advance(len(batch))


def _adaptive(config, target, attack, case, truth, rng, record, memory, attacker) -> None:
    """An adaptive attack on one case, its queries counted and judged here."""
    from superalign.redteam.attacks import Verdict

    count = 0

    def query(prompt: list[dict]) -> Verdict:
        nonlocal count
        if count >= config.budget:
            raise _BudgetSpent
        t0 = time.perf_counter()
        [(reply, error)] = _respond(target, [prompt])
        attempt = _attempt(config, target, case, attack.name, count, prompt, reply, truth, error, time.perf_counter() - t0)
        record(attempt)
        count += 1
        return Verdict(reply, attempt.success)

    try:
        attack.run(case, query, config.budget, rng, memory, attacker)
    except _BudgetSpent:
        pass
    except Exception as err:  # noqa: BLE001 - the attacker model failed: recorded, the campaign goes on
        record(_attempt(config, target, case, attack.name, count, case.messages, None, truth,
                        f"attack crashed: {type(err).__name__}: {err}"[:300], 0.0))


class _BudgetSpent(Exception):
    pass


# --- summary --------------------------------------------------------------------------------------------


def _rate(flags: list[bool]) -> dict:
    from superalign.stats import bootstrap_ci

    if not flags:
        return {"value": None, "low": None, "high": None, "n": 0}
    iv = bootstrap_ci([float(f) for f in flags])
    return {"value": iv.value, "low": iv.low, "high": iv.high, "n": iv.n}


def _diversity(prompts: list[str]) -> float | None:
    """1 − mean pairwise Jaccard similarity of the prompts' word sets: 0 when every success is the same."""
    sets = [set(p.lower().split()) for p in prompts]
    if len(sets) < 2:
        return None
    sims = [len(a & b) / max(1, len(a | b)) for i, a in enumerate(sets) for b in sets[i + 1:]]
    return 1.0 - sum(sims) / len(sims)


def summarize(attempts: list[AttackAttempt], config: Config) -> Result:
    """Rates per attack and per rule (bootstrap over cases), queries to first success, diversity, errors."""
    asr, attempt_rate, queries, diversity, errors = {}, {}, {}, {}, {}
    pairs: dict[tuple[str, str], list[AttackAttempt]] = {}
    for a in attempts:
        pairs.setdefault((a.case_id, a.attack), []).append(a)
    for name in config.attacks:
        mine = [a for a in attempts if a.attack == name]
        # A case where no attempt got a verdict (the target was down) says nothing: left out, not a failure.
        per_case = [g for (c, at), g in pairs.items() if at == name and any(a.success is not None for a in g)]
        asr[name] = _rate([any(a.success for a in g) for g in per_case])
        attempt_rate[name] = _rate([bool(a.success) for a in mine if a.success is not None])
        firsts = [min(a.variant for a in g if a.success) + 1 for g in per_case if any(a.success for a in g)]
        queries[name] = sum(firsts) / len(firsts) if firsts else None
        diversity[name] = _diversity([a.prompt[-1]["content"] for a in mine if a.success])
        errors[name] = sum(a.success is None for a in mine)
    rules = sorted({a.rule for a in attempts})
    by_rule = {r: _rate([any(a.success for a in g) for (c, at), g in pairs.items()
                         if g[0].rule == r and any(a.success is not None for a in g)]) for r in rules}
    metrics = [Metric(stage="validate", name=f"redteam.{k}.asr", value=v["value"], ci_low=v["low"], ci_high=v["high"],
                      n=v["n"], meta={"campaign": config.name})
               for k, v in asr.items() if v["value"] is not None]
    judged = [(bool(a.success), a.meta["llm_judge"]) for a in attempts if a.success is not None and "llm_judge" in a.meta]
    judge_summary = None
    if judged:
        from superalign.redteam.llm_judge import agreement

        judge_summary = agreement(judged)
        if judge_summary["agreement"] is not None:
            a = judge_summary["agreement"]
            metrics.append(Metric(stage="validate", name="redteam.llm_judge.agreement", value=a["value"],
                                  ci_low=a["low"], ci_high=a["high"], n=a["n"], meta={"campaign": config.name}))
    return Result(attempts=attempts, asr=asr, attempt_rate=attempt_rate, by_rule=by_rule, queries_to_success=queries,
                  diversity=diversity, errors=errors, metrics=metrics, judge=judge_summary)


def rerun(attempts: list[AttackAttempt], target: Target, config: Config, campaign: str,
          progress=None) -> list[AttackAttempt]:
    """Send the judged prompts of a campaign to another target, judged the same way: new attempts (campaign
    ``campaign``, ``meta["before"]`` the old verdict). Adaptive attacks' prompts are replayed as they were
    sent, not re-adapted to the new target's replies."""
    from superalign.progress import NullProgress

    cases = {c.id: (c, t) for c, t in policy_cases(config, n=None)}
    judged = [a for a in attempts if a.success is not None]
    advance = (progress or NullProgress()).task(f"replay vs {target.name}", len(judged))
    out = []
    for start in range(0, len(judged), config.batch_size):
        batch = judged[start : start + config.batch_size]
        t0 = time.perf_counter()
        answers = _respond(target, [a.prompt for a in batch])
        per = (time.perf_counter() - t0) / len(batch)
        for a, (reply, error) in zip(batch, answers):
            case, truth = cases[a.case_id]
            again = _attempt(config, target, case, a.attack, a.variant, a.prompt, reply, truth, error, per)
            out.append(again.model_copy(update={"campaign": campaign, "meta": {"before": a.success,
                                                                                "replay_of": a.campaign}}))
        advance(len(batch))
    return out


def replay(attempts: list[AttackAttempt], target: Target, config: Config) -> list[dict]:
    """Send a campaign's successful prompts to another target (did training fix them?); one row per prompt
    with the old and the new verdict."""
    again = rerun([a for a in attempts if a.success], target, config, f"{config.name}-replay")
    return [{"case_id": a.case_id, "attack": a.attack, "variant": a.variant, "before": True, "after": a.success,
             "reply": a.reply, "error": a.error} for a in again]


def patch_pairs(attempts: list[AttackAttempt], config: Config) -> list:
    """Close the loop: each successful attack becomes a DPO pair on its prompt, the target's violating reply
    rejected and a compliant reply (composed by the world, checked by its detectors) chosen. The train
    stage reads the file (``superalign train dpo --preferences``); ``replay`` then shows what it fixed."""
    from superalign.records import Preference
    from superalign.world import responses as compose

    cases = {c.id: t for c, t in policy_cases(config, n=None)}
    out = []
    for a in attempts:
        if not a.success:
            continue
        truth = cases[a.case_id]
        rng = random.Random(f"patch:{a.case_id}:{a.attack}:{a.variant}")
        good = next((r for r in (compose.policy_response(truth, False, rng) for _ in range(8)) if not judge(truth, r)),
                    None)
        if good is None:
            continue
        out.append(Preference(task_id=a.case_id, prompt=a.prompt, chosen=good, rejected=a.reply,
                              labeler="redteam:detectors", meta={"attack": a.attack, "campaign": a.campaign,
                                                                 "rule": a.rule, "violations": a.violations}))
    return out


def write_summary(result: Result, out_dir: Path) -> Path:
    path = out_dir / "summary.json"
    body = {k: getattr(result, k) for k in ("asr", "attempt_rate", "by_rule", "queries_to_success", "diversity",
                                             "errors", "judge")}
    path.write_text(json.dumps(body, indent=2))
    return path


__all__ = ["ChatTarget", "Config", "LocalTarget", "RedTeamError", "Result", "Target", "campaign", "judge",
           "patch_pairs", "policy_cases", "replay", "rerun", "summarize", "write_summary"]
