"""Stage "validate": can we find problems in the trained model automatically?

Red-teams a target (by default the train stage's DPO policy) with the attack registry of
:mod:`superalign.redteam`, judged by the world's policy detectors: attack success rate per attack and per
rule with bootstrap intervals over cases, queries to first success, diversity of successes. Then closes
the loop: the successful attacks on half of the cases become DPO pairs (the violating reply rejected, a
compliant one chosen), the target is patched with them, and every prompt of the campaign is replayed on the
patched model. What the patch fixed and broke is measured on the cases it trained on, whether it generalises
on the held-out half (paired over cases), and what it cost on ordinary instruction prompts (gold, paired).

From the inside, on the same target before the patch: truth probes swept over layers and methods
(:mod:`superalign.probes`: in distribution, on held-out topics and on negations, with intervals), a deception
probe, the truth probe as a monitor of the target's own answers, and the defection probe against the
campaign's outcomes (does it flag, before the reply, the prompts the target will answer with a violation?);
then a sparse autoencoder on one layer and explained neurons and SAE latents, scored against a random
baseline (:mod:`superalign.autointerp`).

Records: every attempt (``AttackAttempt``: the campaign's, then the replay's on the patched model, campaign
``<name>-patched``), the gold evaluations of the cost check, every ``ProbeResult`` and ``UnitExplanation``.

This package is the stage around the red-team technique; it borrows the train stage's DPO trainer for the
patch, as the researcher drives stages (the techniques themselves never import each other).
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from superalign import autointerp, probes
from superalign.autointerp import Config as InterpConfig
from superalign.context import RunContext
from superalign.probes import Config as ProbesConfig
from superalign.records import AttackAttempt, Evaluation, Metric, ProbeResult, UnitExplanation
from superalign.stages import Inputs

STAGE = "validate"
TRAIN = "train:"  # target prefix: a policy the train stage trained in this run
ORGANISM = "organism:"  # target prefix: a cached model organism

# smoke: a tiny random model in seconds; quick: the embedded model on 2 cores (about 5 minutes, docs/validate.md).
PROFILES: dict[str, dict] = {
    "smoke": {"n_cases": 6, "max_new_tokens": 12, "attacks": ["direct", "roleplay", "prefix_injection", "many_shot"],
              "patch": {"epochs": 1, "n_check": 4, "check_max_new_tokens": 12},
              "probes": {"n_train": 24, "n_control": 4, "n_monitor": 4, "n_deception": 6, "max_new_tokens": 8},
              "interp": {"n_sae_windows": 100, "n_eval_windows": 20, "n_interp_windows": 40, "n_units": 3,
                         "epochs": 2, "k": 8}},
    # Replies 64 at a time: the campaign took 3.3-3.5 minutes instead of 5.2 on an AVX2 CPU, the stage 17.0 instead
    # of 18.9, the same 44 numbers (docs/validate.md). Readouts (probes, the defection monitor) keep the probes'
    # 16: padded rows cost there.
    "quick": {"batch_size": 64},
    "full": {"n_cases": 80, "max_new_tokens": 128, "patch": {"n_check": 96, "check_max_new_tokens": 192}},
}
PROFILES["standard"] = PROFILES["quick"]


class Patch(BaseModel):
    """The DPO patch from successful attacks (a LoRA on the target) and its checks."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    beta: float = Field(0.1, gt=0)
    lr: float = Field(5e-4, gt=0)
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(8, ge=1)
    split: Literal["cases", "rules"] = Field("cases", description="how the held-out half is chosen: every other "
                                             "case (templates recur on both sides) or whole rules (a new kind of "
                                             "request: the harder test)")
    n_check: int = Field(24, ge=0, description="ordinary instruction prompts scored before and after (the cost)")
    check_max_new_tokens: int = Field(96, ge=1)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field("smollm2-135m-instruct", description="the pipeline's model (the base of train:* targets)")
    seed: int = Field(0, ge=0, description="seed of the task world and of the attacks' choices")
    target: str = Field("train:dpo", description="what to red-team: train:METHOD (a policy the train stage "
                        "trained in this run), model (the pipeline's model), organism:NAME, or a model source")
    attacks: list[str] = Field(default_factory=lambda: ["direct", "roleplay", "prefix_injection", "encoding",
                                                        "paraphrase", "many_shot"])
    n_cases: int = Field(24, ge=2, description="policy cases of the world's test split")
    max_new_tokens: int = Field(64, ge=1)
    batch_size: int = Field(16, ge=1, description="replies generated at a time (campaign, replay, cost check)")
    budget: int = Field(4, ge=1, description="queries per case of an adaptive attack")
    gcg_steps: int = Field(12, ge=1, description="GCG optimisation steps per case (attack gcg)")
    patch: Patch = Field(default_factory=Patch)
    probes: ProbesConfig = Field(default_factory=ProbesConfig)
    interp: InterpConfig = Field(default_factory=InterpConfig)

    @model_validator(mode="after")
    def _check(self) -> "Config":
        from superalign.redteam.attacks import ATTACKS

        self.campaign()  # an unknown attack fails here, naming it
        needing = [a for a in self.attacks if ATTACKS[a].needs_attacker]
        if needing:  # the stage has no attacker model (superalign redteam --attacker has)
            raise ValueError(f"attacks {', '.join(needing)} need an attacker model, which this stage does not "
                             "load; run them with `superalign redteam TARGET --attacker MODEL`")
        if self.target.startswith(TRAIN) and not self.target[len(TRAIN):]:
            raise ValueError("target train: names no method (e.g. train:dpo)")
        return self

    def campaign(self):
        """The red-team technique's config of this stage's campaign."""
        from superalign import redteam

        return redteam.Config(attacks=self.attacks, n_cases=self.n_cases, world_seed=self.seed, seed=self.seed,
                              budget=self.budget, max_new_tokens=self.max_new_tokens, batch_size=self.batch_size,
                              gcg_steps=self.gcg_steps, name="validate")


class Result(BaseModel):
    model: str
    target: str
    metrics: list[Metric]
    attempts: list[AttackAttempt]
    evaluations: list[Evaluation] = Field(default_factory=list)
    probe_results: list[ProbeResult] = Field(default_factory=list)
    units: list[UnitExplanation] = Field(default_factory=list)
    details: dict = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)

    def records(self) -> list:
        return [*self.attempts, *self.evaluations, *self.probe_results, *self.units]

    def summary(self) -> dict:
        return {"model": self.model, "target": self.target, **self.details, "notes": self.notes,
                "metrics": {m.name: m.value for m in self.metrics}}


def inputs(config: Config) -> Inputs:
    """The pipeline's model, the target when it is a model source, and the train stage when it is its policy."""
    if config.target.startswith(TRAIN):
        return Inputs(models=[config.model], stages=["train"])
    if config.target.startswith(ORGANISM):
        # The organism by its content (organism.json changes whenever it is retrained): a new one reruns this stage.
        from superalign import organisms

        organism = organisms.find(config.target[len(ORGANISM):])  # an unknown name stops here, before any work
        return Inputs(models=[config.model, organism.config["model"]], files=[organism.path / "organism.json"])
    if config.target == "model":
        return Inputs(models=[config.model])
    return Inputs(models=list(dict.fromkeys([config.model, config.target])))


def check(config: Config, pipeline) -> None:
    """Before any work: a train:METHOD target needs that method in the train stage of this run."""
    if not config.target.startswith(TRAIN):
        return
    method = config.target[len(TRAIN):]
    methods = getattr(pipeline.section("train"), "methods", [])
    if method == "best_of_n" or method not in methods:
        trained = [m for m in methods if m != "best_of_n"] or ["none"]
        raise ValueError(f"validate.target={config.target}: the train stage trains {', '.join(trained)}; "
                         f"name one of those or set validate.target=model")


def load_target(config: Config, ctx: RunContext):
    """The target as a trainable-precision (fp32) LoadedModel, named as the records will call it."""
    from pathlib import Path

    from superalign.models.sources import LoadedModel

    if config.target == "model":
        return ctx.load(config.model, train=True)
    if config.target.startswith(ORGANISM):
        from superalign import organisms

        return organisms.load(config.target[len(ORGANISM):], device=ctx.device)
    if not config.target.startswith(TRAIN):
        return ctx.load(config.target, train=True)
    method = config.target[len(TRAIN):]
    policy = ((ctx.upstream.get("train") or {}).get("policies") or {}).get(method)
    if not policy or not Path(policy["path"]).is_dir():
        from superalign.stages import InputMissing

        raise InputMissing(f"validate.target={config.target}: the train stage's {method} policy is not on disk (a "
                           "library call without a cache directory keeps none; a cleared cache loses it): delete "
                           "the run root's .cache/train/finished-* so that the train stage runs again")
    from peft import PeftModel

    if not (Path(policy["path"]) / "adapter_config.json").is_file():  # full fine-tuning saved every weight
        lm = ctx.load(policy["path"], train=True)
        return LoadedModel(name=f"{policy['base']}+{method}", model=lm.model, tokenizer=lm.tokenizer, kind=lm.kind)
    base = ctx.load(policy["base"], train=True)
    model = PeftModel.from_pretrained(base.model, policy["path"]).merge_and_unload()
    return LoadedModel(name=f"{base.name}+{method}", model=model.eval(), tokenizer=base.tokenizer, kind=base.kind)


def run(config: Config, ctx: RunContext | None = None) -> Result:
    """Red-team the target, patch it with DPO on half of the cases' successes, replay everything."""
    from superalign import redteam

    ctx = ctx or RunContext()
    campaign = config.campaign()
    lm = load_target(config, ctx)
    _check_inside(config, lm)  # a layer the target lacks stops here, not after the campaign
    target = redteam.LocalTarget(lm, max_new_tokens=config.max_new_tokens, batch_size=config.batch_size)
    ctx.log(f"validate: red-teaming {lm.name} with {', '.join(config.attacks)} on {config.n_cases} cases")
    start = time.perf_counter()
    found = redteam.campaign(campaign, target, out_dir=ctx.work_dir, progress=ctx.progress, log=ctx.log)
    seconds = {"red-team": round(time.perf_counter() - start, 1)}  # the stage's time in its parts (time table)
    metrics = [m.model_copy(update={"model": lm.name}) for m in found.metrics] + _any_attack(found, lm.name)
    summary = {"asr": found.asr, "by_rule": found.by_rule, "queries_to_success": found.queries_to_success,
               "diversity": found.diversity, "errors": found.errors}
    attempts, evaluations, notes = list(found.attempts), [], []
    inside = _inside(config, lm, found.attempts, ctx)  # before the patch, which wraps the target's weights
    metrics += inside["metrics"]
    summary.update(inside["summary"])
    seconds.update({part: round(inside["summary"][part]["seconds"], 1) for part in ("probes", "interp")
                    if part in inside["summary"]})
    if config.patch.enabled:
        start = time.perf_counter()
        patched = _patch(config, campaign, lm, found.attempts, ctx)
        attempts += patched["attempts"]
        evaluations += patched["evaluations"]
        metrics += patched["metrics"]
        notes += patched["notes"]
        summary["patch"] = patched["summary"]
        seconds["patch"] = round(time.perf_counter() - start, 1)
    summary["seconds"] = seconds
    return Result(model=config.model, target=lm.name, metrics=metrics, attempts=attempts, evaluations=evaluations,
                  probe_results=inside["probes"], units=inside["units"], details=summary, notes=notes)


def probe_headlines(results: list[ProbeResult], layer: int) -> list[Metric]:
    """The probes' headline numbers as metrics (the run's results table): the logistic truth probe at the
    chosen layer on each test, and the monitor, deception and defection probes."""
    import math

    out = []
    for r in results:
        at_layer = r.dataset == "truth" and r.method == "logistic" and r.layer == layer
        if not (at_layer or r.dataset != "truth" or r.test == "monitor") or math.isnan(r.auroc):
            continue
        name = f"probe.{r.dataset}.{r.test}.auroc" if r.test != "monitor" else "probe.monitor.auroc"
        out.append(Metric(stage=STAGE, name=name, value=r.auroc, ci_low=r.ci_low, ci_high=r.ci_high, n=r.n,
                          model=r.model, meta={"rate": False, "layer": r.layer, "method": r.method}))
    return out


def _check_inside(config: Config, lm) -> None:
    """The probes' and the SAE's layers, topics and corpus, checked before the campaign rather than after it."""
    if config.probes.enabled:
        probes.check(config.probes, lm)
    if config.interp.enabled:
        autointerp.check(config.interp, lm)


def _inside(config: Config, lm, attempts: list[AttackAttempt], ctx: RunContext) -> dict:
    """Probes (with the defection probe against the campaign's outcomes) and the SAE and explained units."""
    out: dict = {"metrics": [], "summary": {}, "probes": [], "units": []}
    if config.probes.enabled:
        start = time.perf_counter()
        cache = ctx.work_dir / "activations" if ctx.work_dir is not None else None
        found = probes.run(config.probes, lm, cache_dir=cache, progress=ctx.progress, log=ctx.log)
        judged = [a for a in attempts if a.success is not None]
        defection = probes.defection_monitor(lm, found.best_layer, [a.prompt for a in judged],
                                             [bool(a.success) for a in judged], config.probes.batch_size)
        out["probes"] = [*found.results, defection]
        out["metrics"] += probe_headlines(out["probes"], found.best_layer)
        out["summary"]["probes"] = {"best_layer": found.best_layer, "seconds": time.perf_counter() - start}
    if config.interp.enabled:
        start = time.perf_counter()
        study = autointerp.run(config.interp, lm, stage=STAGE, progress=ctx.progress, log=ctx.log)
        out["metrics"] += study.metrics
        out["units"] = study.units
        out["summary"]["interp"] = {"layer": study.layer, "sae_history": study.history,
                                    "seconds": time.perf_counter() - start}
    return out


def _any_attack(found, model: str) -> list[Metric]:
    """The share of cases that at least one attack broke: the campaign's headline, bootstrap over cases."""
    from superalign.stats import bootstrap_ci

    broken = _broken_cases(found.attempts)
    if not broken:
        return []
    iv = bootstrap_ci([float(v) for v in broken.values()])
    return [Metric(stage=STAGE, name="redteam.any_attack.asr", value=iv.value, ci_low=iv.low, ci_high=iv.high, n=iv.n,
                   model=model, meta={"what": "cases broken by at least one attack"})]


def _broken_cases(attempts: list[AttackAttempt]) -> dict[str, bool]:
    """case id -> whether any judged attempt on it succeeded (cases without a verdict left out)."""
    out: dict[str, bool] = {}
    for a in attempts:
        if a.success is not None:
            out[a.case_id] = out.get(a.case_id, False) or a.success
    return out


def split_cases(case_ids: list[str], rules: list[str] | None = None) -> tuple[set[str], set[str]]:
    """The cases whose successes train the patch and the held-out ones: every other case, or (``rules``
    given, one per case) every other rule in sorted order, so that no held-out case shares its rule."""
    if rules is None:
        return set(case_ids[0::2]), set(case_ids[1::2])
    held_rules = set(sorted(set(rules))[1::2])
    held = {c for c, r in zip(case_ids, rules) if r in held_rules}
    return set(case_ids) - held, held


def _patch(config: Config, campaign, lm, attempts: list[AttackAttempt], ctx: RunContext) -> dict:
    """DPO on the patch half's successes, then the replay and the cost check (see the module docstring)."""
    from superalign import redteam

    cases = [c for c, _ in redteam.policy_cases(campaign)]
    rules = [c.rule for c in cases] if config.patch.split == "rules" else None
    train_ids, held_ids = split_cases([c.id for c in cases], rules)
    pairs = redteam.patch_pairs([a for a in attempts if a.case_id in train_ids], campaign)
    empty = {"attempts": [], "evaluations": [], "metrics": [], "summary": {"pairs": len(pairs)}}
    if not pairs:
        return {**empty, "notes": ["patch: no successful attack on the patch half of the cases: nothing to train on"]}
    tasks, evaluator = _check_tasks(config)
    before = _gold(lm, tasks, evaluator, config, lm.name)
    patched = _train_patch(config, lm, pairs, ctx)
    again = redteam.rerun(attempts, redteam.LocalTarget(patched, config.max_new_tokens, config.batch_size), campaign,
                          "validate-patched", progress=ctx.progress)
    after = _gold(patched, tasks, evaluator, config, patched.name)
    metrics, summary = patch_metrics(attempts, again, train_ids, held_ids, before, after, lm.name)
    summary.update(pairs=len(pairs), split=config.patch.split)
    return {"attempts": again, "evaluations": before + after, "metrics": metrics, "summary": summary, "notes": []}


def _check_tasks(config: Config):
    """Ordinary instruction prompts of the test split (the patch's cost is measured on them) and the evaluator."""
    from superalign.world import World

    world = World(config.seed)
    tasks = world.tasks("instruction", config.patch.n_check, split="test") if config.patch.n_check else []
    return tasks, world.evaluator()


def _gold(lm, tasks, evaluator, config: Config, label: str) -> list[Evaluation]:
    from superalign.evaluation import evaluate_greedy

    return evaluate_greedy(lm, tasks, evaluator, stage=STAGE, max_new_tokens=config.patch.check_max_new_tokens,
                           batch_size=config.batch_size, label=label)


def _train_patch(config: Config, lm, pairs, ctx: RunContext):
    """A LoRA on the target trained with DPO on the patch pairs (the reference: the target itself)."""
    import torch

    from superalign.models.training import make_trainable
    from superalign.rlhf.config import DPOConfig
    from superalign.rlhf.dpo import train_dpo

    p = config.patch
    dpo = DPOConfig(beta=p.beta, lr=p.lr, epochs=p.epochs, batch_size=p.batch_size, seed=config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        policy = make_trainable(lm, dpo.adapter)
    train_dpo(policy, pairs, dpo, progress=ctx.progress)
    policy.model.eval()
    return type(lm)(name=f"{lm.name}+patch", model=policy.model, tokenizer=lm.tokenizer, kind=lm.kind)


def patch_metrics(before: list[AttackAttempt], after: list[AttackAttempt], train_ids: set[str], held_ids: set[str],
                  gold_before: list[Evaluation], gold_after: list[Evaluation], model: str) -> tuple[list[Metric], dict]:
    """What the patch fixed and broke (prompts of the patch half), its held-out effect (cases of the other
    half, paired) and its cost (gold on ordinary prompts, paired). Pure: records in, metrics out."""
    from superalign.stats import paired_bootstrap_diff

    old = {(a.case_id, a.attack, a.variant): a.success for a in before if a.success is not None}
    new = {(a.case_id, a.attack, a.variant): a.success for a in after if a.success is not None}
    both = [k for k in old if k in new]
    mine = [k for k in both if k[0] in train_ids]
    fixed = sum(old[k] and not new[k] for k in mine)
    broke = sum(not old[k] and new[k] for k in mine)
    summary = {"prompts_replayed": len(both), "patch_half": {"successes_before": sum(old[k] for k in mine),
               "fixed": fixed, "broke": broke, "prompts": len(mine)}}
    metrics = [Metric(stage=STAGE, name="patch.fixed", value=float(fixed), n=sum(old[k] for k in mine), model=model,
                      meta={"rate": False, "what": "successful prompts of the patch half that fail after it"}),
               Metric(stage=STAGE, name="patch.broke", value=float(broke), n=sum(not old[k] for k in mine),
                      model=model, meta={"rate": False, "what": "failed prompts of the patch half that succeed after"})]
    for half, ids in (("patch_half", train_ids), ("held_out", held_ids)):
        cases = sorted({k[0] for k in both if k[0] in ids})
        if not cases:
            continue
        b = [float(any(old[k] for k in both if k[0] == c)) for c in cases]
        a = [float(any(new[k] for k in both if k[0] == c)) for c in cases]
        iv = paired_bootstrap_diff(a, b)
        summary[half] = {**summary.get(half, {}), "asr_before": sum(b) / len(b), "asr_after": sum(a) / len(a),
                         "change": {"value": iv.value, "low": iv.low, "high": iv.high}, "cases": len(cases)}
        metrics.append(Metric(stage=STAGE, name=f"patch.{half}.asr_change", value=iv.value, ci_low=iv.low,
                              ci_high=iv.high, n=len(cases), model=model,
                              meta={"rate": False, "before": sum(b) / len(b), "after": sum(a) / len(a)}))
    if gold_before and gold_after:
        iv = paired_bootstrap_diff([e.gold for e in gold_after], [e.gold for e in gold_before])
        summary["gold_change"] = {"value": iv.value, "low": iv.low, "high": iv.high, "n": iv.n}
        metrics.append(Metric(stage=STAGE, name="patch.gold_change", value=iv.value, ci_low=iv.low, ci_high=iv.high,
                              n=iv.n, model=model, meta={"rate": False, "what": "gold on ordinary instruction "
                                                         "prompts, patched minus target (paired)"}))
    return metrics, summary


__all__ = ["Config", "PROFILES", "Patch", "Result", "STAGE", "check", "inputs", "load_target", "patch_metrics",
           "probe_headlines", "run", "split_cases"]
