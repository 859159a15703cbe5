"""Stage "train": can feedback make the model follow intent, and where does optimizing a proxy break?

Top to bottom, as in InstructGPT (Ouyang et al. 2022) with the world's gold reward as the human and a
learned reward model as the proxy (Gao, Schulman & Hilton 2022):

1. feedback: sample responses of the starting policy on training prompts; a simulated labeler (or a
   file of human preferences from the studio) compares them -> preference records, split by prompt;
2. reward model: Bradley-Terry on the training preferences; held-out accuracy, agreement with gold;
3. policies: best-of-n against the reward model, SFT on reward-model-selected demonstrations, DPO,
   PPO, RLOO and online DPO - each from the same starting policy, with the same inputs and outputs;
4. evaluation: greedy answers to held-out prompts scored by gold, paired against the starting policy:
   gold reward, win rate, instruction following on constraint types never trained on, and the
   alignment tax on facts, each with a bootstrap interval;
5. over-optimization: gold and proxy against d = sqrt(KL) for best-of-n and the RL runs, with Gao et
   al.'s functional forms fitted.

Same shape as every stage (:mod:`superalign.stages`): ``Config``, ``Result``, ``run(config, ctx) -> Result``.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from superalign.context import RunContext
from superalign.progress import NullProgress, Progress
from superalign.records import Demonstration, Evaluation, Metric, OptimizationPoint, Preference
from superalign.rlhf.config import (  # noqa: F401 - re-exported: the stage's contract
    METHODS, PROFILES, BestOfNConfig, Config, EvalConfig, Method)
from superalign.stages import Inputs

STAGE = "train"
ONLINE = ("ppo", "rloo", "online_dpo")  # sample the policy while training: the over-optimization curve's RL runs


class Result(BaseModel):
    model: str
    metrics: list[Metric]
    evaluations: list[Evaluation]
    preferences: list[Preference]
    points: list[OptimizationPoint]
    notes: list[str] = Field(default_factory=list)  # e.g. a method that diverged
    # The gold evaluator's read-audit of this run: {"purpose", "caller", "calls"} rows (steps reused from the
    # cache read nothing now, so they do not appear).
    evaluator_reads: list[dict] = Field(default_factory=list)
    # method -> {"path": its saved adapters (or weights), "base": the model they apply to}: what later stages
    # (validate red-teams a policy) load. Only when the run keeps steps (a cache directory).
    policies: dict[str, dict] = Field(default_factory=dict)

    def records(self) -> list:
        return [*self.preferences, *self.evaluations, *self.points]

    def summary(self) -> dict:
        return {"model": self.model, "metrics": {m.name: m.value for m in self.metrics}, "notes": self.notes,
                "evaluator_reads": self.evaluator_reads, "policies": self.policies}


# --- data --------------------------------------------------------------------------------------------


def split_tasks(world, heldout_types: list[str], config: Config) -> dict[str, list]:
    """Training prompts use only seen constraint types; evaluation mixes seen and held-out types."""
    unknown = sorted(set(heldout_types) - _constraint_types())
    if unknown:
        raise ValueError(f"heldout_types: unknown constraint types {unknown}")
    train = [t for t in world.tasks("instruction", None, split="train") if not is_heldout(t, heldout_types)]
    test = world.tasks("instruction", None, split="test")[: config.eval.n_instruction]
    curve = world.tasks("instruction", None, split="validation")[: config.eval.n_curve]
    return {"train": train, "test": test, "curve": curve,
            "fact": world.tasks("fact", config.eval.n_fact, split="test") if config.eval.n_fact else []}


def _constraint_types() -> set[str]:
    from superalign.world.instructions import CONSTRAINTS

    return set(CONSTRAINTS)


def is_heldout(item, heldout_types: list[str]) -> bool:
    """Whether a task (or an evaluation of one) asks for at least one held-out constraint type."""
    return bool(set(heldout_types) & set(item.category.split("+")))


# --- evaluation ---------------------------------------------------------------------------------------


def policy_metrics(name: str, evals: list[Evaluation], start: list[Evaluation], heldout_types: list[str],
                   model: str, n_boot: int, seed: int) -> list[Metric]:
    """Gold, win rate and alignment tax of one policy, paired task by task against the starting policy."""
    from superalign.stats import bootstrap_ci, paired_bootstrap_diff, ratio_bootstrap_ci
    from superalign.world.instructions import instructions_followed, prompt_followed

    def metric(metric_name: str, ci, **meta) -> Metric:
        return Metric(stage=STAGE, name=f"{name}.{metric_name}", value=ci.value, ci_low=ci.low, ci_high=ci.high,
                      n=ci.n, model=model, meta=meta)

    ins = [e for e in evals if e.kind == "instruction"]
    ins0 = {e.task_id: e for e in start if e.kind == "instruction"}
    gold, gold0 = [e.gold for e in ins], [ins0[e.task_id].gold for e in ins]
    out = [metric("gold", bootstrap_ci(gold, n_boot=n_boot, seed=seed))]
    if name != "start":
        wins = [1.0 if g > g0 else 0.5 if g == g0 else 0.0 for g, g0 in zip(gold, gold0)]
        out.append(metric("gold_gain", paired_bootstrap_diff(gold, gold0, n_boot=n_boot, seed=seed), rate=False))
        out.append(metric("win_rate", bootstrap_ci(wins, n_boot=n_boot, seed=seed)))
    held = [e for e in ins if is_heldout(e, heldout_types)]
    for mode in ("strict", "loose") if held else ():
        followed, asked = zip(*(instructions_followed(e.details, mode, heldout_types) for e in held))
        out.append(metric(f"heldout.prompt_{mode}", bootstrap_ci([prompt_followed(e.details, mode) for e in held],
                                                                  n_boot=n_boot, seed=seed)))
        out.append(metric(f"heldout.instruction_{mode}",
                          ratio_bootstrap_ci(list(followed), list(asked), n_boot=n_boot, seed=seed)))
    facts = [e for e in evals if e.kind == "fact"]
    if facts:
        facts0 = {e.task_id: e for e in start if e.kind == "fact"}
        acc, acc0 = [float(e.passed) for e in facts], [float(facts0[e.task_id].passed) for e in facts]
        out.append(metric("fact_accuracy", bootstrap_ci(acc, n_boot=n_boot, seed=seed)))
        if name != "start":
            # Alignment tax: how much fact accuracy the optimization cost (positive = a loss).
            out.append(metric("alignment_tax", paired_bootstrap_diff(acc0, acc, n_boot=n_boot, seed=seed), rate=False))
    return out


def _evaluate(lm, tasks: dict, evaluator, config: Config, label: str, progress: Progress) -> list[Evaluation]:
    from superalign.evaluation import evaluate_greedy

    ev = config.eval
    return (evaluate_greedy(lm, tasks["test"], evaluator, stage=STAGE, max_new_tokens=ev.max_new_tokens,
                            batch_size=ev.batch_size, progress=progress, label=label)
            + evaluate_greedy(lm, tasks["fact"], evaluator, stage=STAGE, max_new_tokens=ev.fact_max_new_tokens,
                              batch_size=ev.batch_size, progress=progress, label=label))


def _proxy_metric(name: str, rm, evals: list[Evaluation], model: str, config: Config) -> Metric:
    """Mean reward-model score of a policy's held-out instruction answers (what the optimizer saw)."""
    from superalign.stats import bootstrap_ci

    ins = [e for e in evals if e.kind == "instruction"]
    scores = rm.score([e.prompt for e in ins], [e.response for e in ins])
    ci = bootstrap_ci(np.asarray(scores, dtype=float), n_boot=config.eval.n_boot, seed=config.seed)
    return Metric(stage=STAGE, name=f"{name}.proxy", value=ci.value, ci_low=ci.low, ci_high=ci.high, n=ci.n,
                  model=model, meta={"rate": False})


def _reward_model_metrics(rm, splits, feedback_tasks, feedback_responses, evaluator,
                          config: Config, model: str) -> list[Metric]:
    from superalign.rlhf.feedback import usable
    from superalign.rlhf.reward_model import gold_agreement
    from superalign.stats import bootstrap_ci

    out = []
    for split_name, prefs in (("validation", usable(splits.validation)), ("test", usable(splits.test))):
        if not prefs:  # ties say nothing about which response the reward model should rank higher
            continue
        chosen = rm.score([p.prompt for p in prefs], [p.chosen for p in prefs])
        rejected = rm.score([p.prompt for p in prefs], [p.rejected for p in prefs])
        correct = (np.asarray(chosen, dtype=float) > np.asarray(rejected, dtype=float)).astype(float)
        ci = bootstrap_ci(correct, n_boot=config.eval.n_boot, seed=config.seed)
        out.append(Metric(stage=STAGE, name=f"reward_model.{split_name}_accuracy", value=ci.value, ci_low=ci.low,
                          ci_high=ci.high, n=ci.n, model=model))
    # Agreement with gold on the held-out (test-split) prompts' samples only: on training prompts it would
    # measure memorization, not the proxy the policies are optimized against.
    test_ids = {p.task_id for p in splits.test}
    held = [(t, r) for t, r in zip(feedback_tasks, feedback_responses) if t.id in test_ids]
    agreement = gold_agreement(rm, [t for t, _ in held], [r for _, r in held], evaluator) if held else math.nan
    if math.isfinite(agreement):  # NaN: no held-out pair differs in gold
        out.append(Metric(stage=STAGE, name="reward_model.gold_agreement", value=float(agreement), model=model,
                          n=len(held), meta={"what": "pairwise agreement with gold on held-out prompts' samples "
                                                     "whose gold differs"}))
    return out


def _sample(lm, tasks: list, n: int, temperature: float, max_new_tokens: int, batch_size: int, seed: int,
            progress: Progress, what: str) -> list[list[str]]:
    """n samples per task (one seeded stream per copy), as [task][sample]."""
    from superalign.models.generation import GenerationConfig, generate

    prompts = [t.messages for t in tasks for _ in range(n)]
    advance = progress.task(what, len(prompts))
    flat = generate(lm, prompts, GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature,
                                                  do_sample=True, seed=seed, batch_size=batch_size), advance)
    return [flat[i * n:(i + 1) * n] for i in range(len(tasks))]


def _curve_point(method: str, step: int, policy, rm, tasks: list, evaluator, config: Config) -> OptimizationPoint:
    """Gold, proxy and KL(policy || reference) of fresh samples on the curve prompts, at one training step."""
    from superalign.models import LoadedModel
    from superalign.models.generation import completion_logprobs
    from superalign.rlhf.common import reference_policy
    from superalign.stats import bootstrap_ci

    samples = _sample(policy, tasks, 1, 1.0, config.eval.max_new_tokens, config.eval.batch_size,
                      config.seed + 7919, NullProgress(), "curve")
    responses = [s[0] for s in samples]
    prompts = [t.messages for t in tasks]
    logp = completion_logprobs(policy, prompts, responses)
    with reference_policy(policy) as ref_model:
        ref = LoadedModel(name="reference", model=ref_model, tokenizer=policy.tokenizer, kind="decoder")
        logp_ref = completion_logprobs(ref, prompts, responses)
    # Monte Carlo KL(π || π_ref) = E_{y~π}[log π(y) − log π_ref(y)], clipped at 0 against sampling noise.
    kl = max(float((logp - logp_ref).mean()), 0.0)
    gold = [evaluator.score(t, r).gold for t, r in zip(tasks, responses)]
    ci = bootstrap_ci(gold, n_boot=config.eval.n_boot, seed=config.seed)
    proxy = float(np.mean(np.asarray(rm.score(prompts, responses), dtype=float)))
    return OptimizationPoint(method=method, step=step, kl=kl, gold=ci.value, proxy=proxy, gold_ci_low=ci.low,
                             gold_ci_high=ci.high, seed=config.seed, model=policy.name)


def _fit_metrics(method: str, points: list[OptimizationPoint], model: str) -> list[Metric]:
    """Gao et al. (2022) functional form fitted to gold gain vs d = sqrt(KL), as metrics the report draws."""
    from superalign.rlhf.overoptimization import fit_points, peak

    if sum(p.kl > 0 for p in points) < 3:  # two parameters: fewer points would fit exactly, and mean nothing
        return []
    fit = fit_points(points)
    meta = {"form": fit.form, "alpha": fit.alpha, "beta": fit.beta, "r2": fit.r2, "d_peak": fit.d_peak,
            "gold0": min(points, key=lambda p: p.kl).gold, "peak": peak(points), "rate": False}
    return [Metric(stage=STAGE, name=f"overopt.{method}.{key}", value=float(value), model=model, meta=meta)
            for key, value in (("alpha", fit.alpha), ("beta", fit.beta), ("r2", fit.r2)) if math.isfinite(value)]


# --- the stage ----------------------------------------------------------------------------------------

# A method's answers, curve, note, and the labeler comparisons it asked for while training (online DPO's judge)
Outcome = tuple[list[Evaluation], list[OptimizationPoint], str | None, int]


def _reward_model(splits, config: Config, ctx: RunContext, directory: Path | None):
    """The proxy: trained on the training preferences, or loaded from the step cache."""
    from superalign.rlhf.reward_model import CHECKPOINT_META, load_reward_model, train_reward_model

    # Each save writes its metadata file last, so finding it means the save finished.
    done = directory is not None and any((directory / f).is_file() for f in (CHECKPOINT_META, "ensemble.json"))
    if done and not ctx.force:
        return load_reward_model(directory, device=ctx.device)
    rm = train_reward_model(splits.train, splits.validation, config.reward_model, progress=ctx.progress,
                            device=ctx.device).model
    if directory is not None:
        rm.save(directory)
    return rm


def collect_feedback(config: Config, policy, train_tasks: list, evaluator, progress: Progress):
    """(preferences, samples): the starting policy's samples of the first ``feedback.n_prompts`` training
    prompts, compared by the simulated labeler, or preferences from a human file."""
    from superalign.rlhf.feedback import collect_preferences, load_preferences, sample_responses
    from superalign.world.labelers import SimulatedLabeler

    fb = config.feedback
    # A bad file should fail before minutes of sampling; the samples still serve the reward model's
    # gold agreement and the SFT demonstrations.
    human = load_preferences(config.preferences_file) if config.preferences_file is not None else None
    tasks = train_tasks[: fb.n_prompts]
    responses = sample_responses(policy, tasks, fb.samples_per_prompt, fb, progress=progress)
    if human is not None:
        return human, responses
    labeler = SimulatedLabeler(fb.labeler.to_config(), evaluator)
    return collect_preferences(tasks, responses, labeler), responses


def demonstrations(tasks: list, responses: list[list[str]], rm, keep_fraction: float = 0.5) -> list[Demonstration]:
    """SFT data: each prompt's reward-model-best sample, keeping the best-scored ``keep_fraction`` of prompts."""
    from superalign.rlhf.best_of_n import select_best

    scores = [np.asarray(rm.score([t.messages] * len(rs), rs), dtype=float) for t, rs in zip(tasks, responses)]
    best = select_best(responses, scores)
    top = [float(s.max()) for s in scores]
    cut = np.quantile(top, 1.0 - keep_fraction) if top else 0.0
    return [Demonstration(task_id=t.id, prompt=list(t.messages), response=b, source=f"best_of_{len(rs)}:rm")
            for t, rs, b, s in zip(tasks, responses, best, top) if s >= cut]


def _best_of_n(base, rm, tasks: dict, evaluator, config: Config, progress: Progress):
    """Best-of-n on held-out prompts: the curve over n (unbiased estimator) and the n_max policy's answers."""
    from superalign.evaluation import score_responses
    from superalign.rlhf.best_of_n import best_of_n_curve, select_best

    bon = config.best_of_n
    prompts = tasks["test"][: bon.n_prompts]  # gains stay paired: policy_metrics matches tasks by id
    samples = _sample(base, prompts, bon.n_max, bon.temperature, bon.max_new_tokens, config.eval.batch_size,
                      config.seed, progress, f"train: best-of-{bon.n_max} samples")
    proxy = np.array([np.asarray(rm.score([t.messages] * len(s), s), dtype=float)
                      for t, s in zip(prompts, samples)])  # [P, N]
    gold = np.array([[evaluator.score(t, r).gold for r in s] for t, s in zip(prompts, samples)])  # [P, N]
    points = best_of_n_curve(proxy, gold, [n for n in bon.ns if n <= bon.n_max])
    chosen = select_best(samples, list(proxy))
    evals = score_responses(prompts, chosen, evaluator, stage=STAGE, label=f"{base.name}+best_of_{bon.n_max}")
    return evals, points


def _labeler_pick(config: Config, tasks: list, evaluator, asked: list[int]):
    """Online DPO's labeler judge: the simulated labeler compares a round's replies, best vs worst per prompt.

    Each comparison is a query to the simulated human (gold through noise): their number is appended to
    ``asked``, so the report can show how many labels the method used beside its gain.
    """
    from superalign.rlhf.feedback import best_vs_worst, collect_preferences
    from superalign.world.labelers import SimulatedLabeler

    labeler = SimulatedLabeler(config.feedback.labeler.to_config(), evaluator)

    def pick(indices, replies):
        prefs = collect_preferences([tasks[i] for i in indices], replies, labeler)
        asked.append(len(prefs))
        return best_vs_worst(prefs)

    return pick


def _train_method(method: str, config: Config, rm, data: dict, tasks: dict, evaluator, ctx: RunContext,
                  out_dir: Path | None):
    """Train a fresh copy of the starting policy with one method.

    Returns (policy, TrainResult, points, note, labeler comparisons asked while training)."""
    from superalign.rlhf import dpo, online_dpo, ppo, rloo, sft
    from superalign.rlhf.common import TrainingDiverged, make_trainable

    import torch

    progress = ctx.progress
    method_config = getattr(config, method)
    # The adapters' random init comes from the method's own seed, not from whatever ran before in this process
    # (a reward model trained or read from the cache): the same step key must give the same result.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(method_config.seed)
        policy = make_trainable(ctx.load(config.model, train=True), method_config.adapter)
    points: list[OptimizationPoint] = []
    online = method in ONLINE

    def hook(step: int, lm) -> None:
        with evaluator.reading(f"report: over-optimization curve of {method}"):  # the experimenter's, not the method's
            points.append(_curve_point(method, step, lm, rm, tasks["curve"], evaluator, config))

    common = dict(progress=progress, eval_hook=hook if online else None,
                  eval_every=config.eval.eval_every if online else 0,
                  out_dir=out_dir)
    prompts = [t.messages for t in tasks["train"]]
    note, asked = None, []
    try:
        if method == "sft":
            result = sft.train_sft(policy, data["demonstrations"], method_config, **common)
        elif method == "dpo":
            result = dpo.train_dpo(policy, data["preferences"], method_config, **common)
        elif method == "ppo":
            result = ppo.train_ppo(policy, prompts, rm, method_config, **common)
        elif method == "rloo":
            result = rloo.train_rloo(policy, prompts, rm, method_config, **common)
        else:
            pick = _labeler_pick(config, tasks["train"], evaluator, asked) if method_config.judge == "labeler" else None
            result = online_dpo.train_online_dpo(policy, prompts, rm, method_config, pick=pick, **common)
    except TrainingDiverged as err:  # the policy holds its last good state: evaluate that, and say so
        result, note = getattr(err, "result", None), f"{method}: {err}"
    return policy, result, points, note, sum(asked)


def step_keys(config: Config, ctx: RunContext) -> dict[str, dict]:
    """What each cached step depends on: a step is reused wherever its key matches (any run, any command).

    The inputs' content hashes (the model's weights, the preference file) come from the pipeline, or are
    computed here for a library call that keeps steps.
    """
    hashes = dict(ctx.input_hashes) or (inputs(config).hashes() if ctx.cache_dir is not None else {})
    weights = hashes.get(f"model:{config.model}")
    tasks = {"model": config.model, "weights": weights, "seed": config.seed, "heldout_types": config.heldout_types,
             "device": ctx.device}
    # A preference file by its content, not its path: the same export under another name is the same feedback.
    preferences = hashes.get(f"file:{config.preferences_file}") if config.preferences_file is not None else None
    feedback = {**tasks, "feedback": config.feedback, "preferences": preferences}
    reward_model = {**feedback, "reward_model": config.reward_model,
                    "backbone": hashes.get(f"model:{config.reward_model.backbone}")}
    keys = {"feedback": feedback, "reward_model": reward_model, "start": {**tasks, "eval": config.eval}}
    for method in config.methods:
        keys[method] = {**reward_model, "eval": config.eval, method: getattr(config, method)}
    return keys


def run(config: Config, ctx: RunContext | None = None) -> Result:
    """Feedback -> reward model -> each method from the same start -> paired held-out evaluation.

    Each finished step (feedback, reward model, start and each method's evaluation) is kept in
    ``ctx.cache_dir`` under a key of what it depends on: a rerun after an interruption picks up at the
    first unfinished step, and another config that shares a step (say, only ``dpo.beta`` differs) reuses it.
    An empty ``methods`` list trains and evaluates the reward model alone.
    """
    from superalign.rlhf.feedback import split_by_prompt
    from superalign.world import World

    ctx = ctx or RunContext()
    progress = ctx.progress
    keys = step_keys(config, ctx)
    world = World(config.seed)
    evaluator = world.evaluator()
    tasks = split_tasks(world, config.heldout_types, config)
    base = ctx.load(config.model, train=True)  # fp32 like the trained policies: gains are paired in one dtype
    with evaluator.reading("feedback: the simulated labeler's up-front comparisons"):
        prefs, fb_responses = ctx.step("feedback", keys["feedback"],
                                       lambda: collect_feedback(config, base, tasks["train"], evaluator, progress),
                                       tuple[list[Preference], list[list[str]]])
    fb_tasks = tasks["train"][: len(fb_responses)]
    splits = split_by_prompt(prefs, seed=config.seed)
    rm = _reward_model(splits, config, ctx, ctx.step_path("reward_model", keys["reward_model"]))
    with evaluator.reading("report: reward model's agreement with gold"):
        metrics = _reward_model_metrics(rm, splits, fb_tasks, fb_responses, evaluator, config, base.name)
    if not config.methods:
        return Result(model=base.name, metrics=metrics, evaluations=[], preferences=prefs, points=[],
                      evaluator_reads=evaluator.audit())
    ev = dict(heldout_types=config.heldout_types, model=base.name, n_boot=config.eval.n_boot, seed=config.seed)

    with evaluator.reading("report: evaluation of start"):
        start = ctx.step("start", keys["start"],
                         lambda: _evaluate(base, tasks, evaluator, config, f"{base.name}+start", progress),
                         list[Evaluation])
    metrics += policy_metrics("start", start, start, **ev) + [_proxy_metric("start", rm, start, base.name, config)]
    evaluations, points, notes = list(start), [], []
    data = {"preferences": splits.train}
    if "sft" in config.methods:
        data["demonstrations"] = demonstrations(fb_tasks, fb_responses, rm)

    def outcome(method: str) -> Outcome:
        if method == "best_of_n":
            with evaluator.reading("report: evaluation of best_of_n (gold of every sample, for its curve)"):
                return *_best_of_n(base, rm, tasks, evaluator, config, progress), None, 0
        with evaluator.reading(f"training: {method}"):  # online DPO's labeler judge asks here
            policy, _, method_points, note, asked = _train_method(method, config, rm, data, tasks, evaluator, ctx,
                                                                  ctx.step_path(method, keys[method]))
        with evaluator.reading(f"report: evaluation of {method}"):
            return (_evaluate(policy, tasks, evaluator, config, f"{base.name}+{method}", progress), method_points,
                    note, asked)

    for method in config.methods:
        _forget_if_policy_lost(ctx, method, keys[method])
        evals, method_points, note, asked = ctx.step(method, keys[method], partial(outcome, method), Outcome)
        notes += [note] if note else []
        # best-of-n leaves the model untouched, so its fact answers are the start's: no tax by construction.
        scored = evals + [e for e in start if e.kind == "fact"] if method == "best_of_n" else evals
        metrics += policy_metrics(method, scored, start, **ev) + [_proxy_metric(method, rm, evals, base.name, config)]
        metrics.append(_labels_metric(method, len(prefs), asked, config, base.name))
        metrics += _fit_metrics(method, method_points, base.name)
        evaluations += evals
        points += method_points
    return Result(model=base.name, metrics=metrics, evaluations=evaluations, preferences=prefs, points=points,
                  notes=notes, evaluator_reads=evaluator.audit(), policies=_saved_policies(config, ctx, keys))


def _forget_if_policy_lost(ctx: RunContext, method: str, key: dict) -> None:
    """A method's kept evaluation without its saved policy (its directory was deleted) is trained again, so
    that the stages reading the policy (validate) find it."""
    directory = ctx.step_path(method, key) if method != "best_of_n" else None
    if directory is not None and not directory.is_dir():
        ctx.step_path(method, key, ".json").unlink(missing_ok=True)


def _saved_policies(config: Config, ctx: RunContext, keys: dict) -> dict[str, dict]:
    """Where each trained method's policy was saved (its step directory), for the stages that read it."""
    out = {}
    for method in config.methods:
        path = ctx.step_path(method, keys[method]) if method != "best_of_n" else None
        if path is not None and ((path / "adapter_config.json").is_file() or (path / "config.json").is_file()):
            out[method] = {"path": str(path.resolve()), "base": config.model}
    return out


def _labels_metric(method: str, up_front: int, asked: int, config: Config, model: str) -> Metric:
    """How many human (simulated-labeler) comparisons a method's policy depends on: the up-front feedback every
    method shares (through the reward model or DPO's pairs), plus the comparisons its judge asked for while
    training (online DPO with ``judge: labeler``). Methods differing here are not comparable on gain alone."""
    source = "file" if config.preferences_file is not None else "simulated labeler"
    return Metric(stage=STAGE, name=f"{method}.labels", value=float(up_front + asked), n=up_front + asked, model=model,
                  meta={"rate": False, "up_front": up_front, "during_training": asked, "source": source,
                        "what": "preference comparisons the policy depends on (up-front + asked while training)"})


def inputs(config: Config) -> Inputs:
    """The starting policy, the reward model's backbone and a human preference file, when given."""
    if config.preferences_file is None:
        return Inputs(models=[config.model, config.reward_model.backbone])

    def check() -> None:  # every line of the file, before the models load
        from superalign.rlhf.feedback import load_preferences

        load_preferences(config.preferences_file)

    return Inputs(models=[config.model, config.reward_model.backbone], files=[config.preferences_file],
                  checks=[check])
