"""Tests that catch wrong science in the train stage, not only wrong plumbing: evaluating on what was trained
on, held-out constraint types leaking into training, unpaired gain intervals, and log-probs at a
temperature other than the one that sampled (issue 15). Each one fails with its bug planted."""

from __future__ import annotations

import contextlib
import importlib
import json

import numpy as np
import pytest
import torch

from superalign import rlhf
from superalign.config import load_config
from superalign.context import RunContext
from superalign.models import GenerationConfig, load
from superalign.records import Evaluation
from superalign.rlhf.common import AdapterConfig, frozen_reference, make_trainable
from superalign.rlhf.feedback import split_by_prompt, usable
from superalign.rlhf.rollout import rollout
from superalign.world import World
from tests.unit.rl_common import PROMPTS, fraction_of_a, tiny_policy

SPLITS = ("train", "validation", "test")


def _key(messages) -> str:
    return json.dumps(messages, sort_keys=True)


def _ids(world, tasks_or_prompts) -> set[str]:
    """Task ids of tasks, records with a task_id, or chat prompts (looked up among the world's instructions)."""
    by_prompt = {_key(t.messages): t.id for s in SPLITS for t in world.tasks("instruction", None, split=s)}
    return {x.task_id if hasattr(x, "task_id") else x.id if hasattr(x, "id") else by_prompt[_key(x)]
            for x in tasks_or_prompts}


# --- the stage as it runs: what each part saw -----------------------------------------------------------


@pytest.fixture(scope="module")
def stage():
    """One smoke run of the stage (tiny models), with spies on what every trainer and evaluator was given."""
    config = load_config("smoke", overrides=[
        "train.methods=[best_of_n,dpo,rloo,online_dpo]", "train.online_dpo.judge=labeler", "train.eval.n_curve=2",
        "train.eval.n_fact=2", "train.eval.max_new_tokens=8", "train.feedback.max_new_tokens=8",
        "train.best_of_n.max_new_tokens=8", "train.rloo.steps=1", "train.rloo.max_new_tokens=6",
        "train.online_dpo.rounds=1", "train.online_dpo.prompts_per_round=2", "train.online_dpo.max_new_tokens=6"]).train
    seen: dict[str, list] = {"curve": [], "labeler": []}

    def spy(mp, target: str, name: str, data_arg: int = 1):
        module, attr = target.rsplit(".", 1)
        real = getattr(importlib.import_module(module), attr)

        def wrapper(*args, **kwargs):
            seen[name] = list(args[data_arg])
            return real(*args, **kwargs)

        mp.setattr(target, wrapper)

    def labeler_pick(config, tasks, *args):  # the tasks whose replies the labeler is asked to compare
        pick = real_pick(config, tasks, *args)
        return lambda indices, replies: seen["labeler"].extend(tasks[i] for i in indices) or pick(indices, replies)

    def curve_point(method, step, policy, rm, tasks, *args):
        seen["curve"].extend(tasks)
        return real_curve_point(method, step, policy, rm, tasks, *args)

    real_pick, real_curve_point = rlhf._labeler_pick, rlhf._curve_point
    with pytest.MonkeyPatch.context() as mp:
        spy(mp, "superalign.rlhf.reward_model.train_reward_model", "reward_model", data_arg=0)
        spy(mp, "superalign.rlhf.dpo.train_dpo", "dpo")
        spy(mp, "superalign.rlhf.rloo.train_rloo", "rloo")
        spy(mp, "superalign.rlhf.online_dpo.train_online_dpo", "online_dpo")
        mp.setattr(rlhf, "_labeler_pick", labeler_pick)
        mp.setattr(rlhf, "_curve_point", curve_point)
        result = rlhf.run(config, RunContext())
    return config, World(config.seed), result, seen


def _by_model(result) -> dict[str, list[Evaluation]]:
    out: dict[str, list[Evaluation]] = {}
    for e in result.evaluations:
        out.setdefault(e.model.split("+", 1)[1], []).append(e)
    return out


def test_the_stage_never_evaluates_on_what_it_trained_on(stage):
    """Guards against test/curve prompts drawn from the training split, or best-of-n/evaluation on tasks["train"]:
    feedback and every trainer's prompts are disjoint from the evaluation and over-optimization-curve prompts."""
    config, world, result, seen = stage
    trained = {
        "feedback": _ids(world, result.preferences),
        "reward_model": _ids(world, seen["reward_model"]),
        "dpo": _ids(world, seen["dpo"]),
        "rloo": _ids(world, seen["rloo"]),
        "online_dpo": _ids(world, seen["online_dpo"]),
        "online_dpo labeler": _ids(world, seen["labeler"]),
    }
    assert all(trained.values()), trained  # every spy saw data: an empty set would prove nothing
    train_split = _ids(world, world.tasks("instruction", None, split="train"))
    evaluated = {e.task_id for e in result.evaluations if e.kind == "instruction"}
    curve = _ids(world, seen["curve"])
    assert evaluated and curve
    for what, ids in trained.items():
        assert not ids & evaluated, f"{what} trained on evaluation prompts"
        assert not ids & curve, f"{what} trained on the curve's prompts"
        assert ids <= train_split, what
    assert not evaluated & curve  # the curve is a development set, not the test set
    assert evaluated <= _ids(world, world.tasks("instruction", None, split="test"))
    assert curve <= _ids(world, world.tasks("instruction", None, split="validation"))
    # the same prompt text under two ids would leak too
    texts = {s: {_key(t.messages) for t in world.tasks("instruction", None, split=s)} for s in SPLITS}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["validation"]


def test_the_reward_model_is_scored_on_prompts_it_was_not_trained_on(stage):
    """Guards against the reward model's held-out accuracy measured on its own training comparisons."""
    config, _, result, seen = stage
    splits = split_by_prompt(result.preferences, seed=config.seed)
    trained = {p.task_id for p in seen["reward_model"]}
    assert trained == {p.task_id for p in splits.train}
    assert not trained & {p.task_id for p in splits.validation + splits.test}
    values = {m.name: m for m in result.metrics}
    for name, prefs in (("validation", usable(splits.validation)), ("test", usable(splits.test))):
        if prefs:  # tiny models often give only ties
            assert values[f"reward_model.{name}_accuracy"].n == len(prefs)


def test_no_training_prompt_asks_for_a_heldout_constraint_type(stage):
    """Guards against the held-out filter dropped from split_tasks: "held-out" accuracy would then be seen types."""
    config, world, result, seen = stage
    heldout = config.heldout_types
    tasks = rlhf.split_tasks(world, heldout, config)
    assert not any(rlhf.is_heldout(t, heldout) for t in tasks["train"])
    by_id = {t.id: t for s in SPLITS for t in world.tasks("instruction", None, split=s)}
    for what in ("reward_model", "dpo", "rloo", "online_dpo", "labeler"):
        ids = _ids(world, seen[what])
        assert not any(rlhf.is_heldout(by_id[i], heldout) for i in ids), what
    assert not any(rlhf.is_heldout(by_id[p.task_id], heldout) for p in result.preferences)
    # ... while the evaluation does ask for held-out types, and there are some in the raw training split
    assert any(rlhf.is_heldout(e, heldout) for e in result.evaluations if e.kind == "instruction")
    assert any(rlhf.is_heldout(t, heldout) for t in world.tasks("instruction", None, split="train"))


def test_the_stage_metrics_are_computed_on_the_test_split_and_paired_by_task(stage):
    """Guards against metrics read off the wrong records: each method's gold and gain come from its own answers
    to the test prompts, matched by task id with the start's; held-out rates count held-out prompts only."""
    config, world, result, _ = stage
    values = {m.name: m for m in result.metrics}
    runs = _by_model(result)
    test_ids = [t.id for t in world.tasks("instruction", config.eval.n_instruction, split="test")]
    fact_ids = [t.id for t in world.tasks("fact", config.eval.n_fact, split="test")]
    start = {e.task_id: e for e in runs["start"]}
    assert [e.task_id for e in runs["start"] if e.kind == "instruction"] == test_ids
    assert [e.task_id for e in runs["start"] if e.kind == "fact"] == fact_ids
    for name, evals in runs.items():
        method = "best_of_n" if name.startswith("best_of_") else name
        ins = [e for e in evals if e.kind == "instruction"]
        expected = test_ids[: config.best_of_n.n_prompts] if method == "best_of_n" else test_ids
        assert [e.task_id for e in ins] == expected, name
        gold = values[f"{method}.gold"]
        assert gold.n == len(ins) and gold.value == pytest.approx(np.mean([e.gold for e in ins]))
        held = [e for e in ins if rlhf.is_heldout(e, config.heldout_types)]
        assert values[f"{method}.heldout.prompt_strict"].n == len(held) > 0
        if method != "start":
            gain = values[f"{method}.gold_gain"]
            assert gain.n == len(ins)
            assert gain.value == pytest.approx(np.mean([e.gold - start[e.task_id].gold for e in ins]))
            assert gain.ci_low <= gain.value <= gain.ci_high
    assert values["start.fact_accuracy"].n == len(fact_ids)


# --- paired intervals -----------------------------------------------------------------------------------


_Q = [{"role": "user", "content": "q"}]


def _evals(model: str, golds: dict[str, float], facts: dict[str, bool] | None = None) -> list[Evaluation]:
    ins = [Evaluation(stage="train", model=model, task_id=t, kind="instruction", category="length:max_words",
                      prompt=_Q, response="", gold=g, passed=g > 0.5) for t, g in golds.items()]
    fact = [Evaluation(stage="train", model=model, task_id=t, kind="fact", category="geo", prompt=_Q, response="",
                       gold=float(p), passed=p) for t, p in (facts or {}).items()]
    return ins + fact


def _metrics(evals, start) -> dict:
    out = rlhf.policy_metrics("m", evals, start, [], model="m", n_boot=2000, seed=0)
    return {m.name: m for m in out}


def test_gold_gain_is_a_paired_interval():
    """Guards against comparing two independent intervals (or resampling the two policies independently): the
    tasks differ a lot in difficulty, the policy gains +0.05 on every one; only pairing sees that."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.0, 0.9, size=40)
    start = _evals("start", {f"t{i}": float(g) for i, g in enumerate(base)})
    policy = _evals("m", {f"t{i}": float(g + 0.05 + rng.normal(0, 0.005)) for i, g in enumerate(base)})
    gain = _metrics(policy, start)["m.gold_gain"]
    assert gain.value == pytest.approx(0.05, abs=0.005)
    assert 0.0 < gain.ci_low < gain.ci_high < 0.06  # tight, and excludes zero
    # an unpaired comparison of the same numbers cannot tell the gain from zero: the test's premise
    boot = np.random.default_rng(1).integers(0, 40, size=(2000, 2, 40))
    golds = np.array([[e.gold for e in policy], [e.gold for e in start]])
    unpaired = golds[0][boot[:, 0]].mean(1) - golds[1][boot[:, 1]].mean(1)
    assert np.quantile(unpaired, 0.025) < 0 < np.quantile(unpaired, 0.975)


def test_gains_are_matched_by_task_id_not_by_position():
    """Guards against pairing by list order: a policy's answers in another order give the same gain, win rate
    and alignment tax, with the same intervals."""
    rng = np.random.default_rng(0)
    golds = {f"t{i}": float(g) for i, g in enumerate(rng.uniform(0, 1, size=30))}
    facts = {f"f{i}": bool(i % 2) for i in range(20)}
    start = _evals("start", golds, facts)
    policy = _evals("m", {t: g + 0.02 for t, g in golds.items()}, facts)  # +0.02 everywhere, same facts
    shuffled = [policy[i] for i in rng.permutation(len(policy))]
    ordered, mixed = _metrics(policy, start), _metrics(shuffled, start)
    for name in ("m.gold_gain", "m.win_rate", "m.alignment_tax"):
        a, b = ordered[name], mixed[name]
        assert (b.value, b.ci_low, b.ci_high) == pytest.approx((a.value, a.ci_low, a.ci_high)), name
    assert ordered["m.win_rate"].value == 1.0 and ordered["m.win_rate"].ci_low == 1.0
    assert ordered["m.alignment_tax"].value == 0.0 and ordered["m.alignment_tax"].ci_high == 0.0
    assert ordered["m.gold_gain"].ci_low == pytest.approx(0.02)


# --- log-probs at the sampling temperature ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_reference_logprobs_are_at_the_sampling_temperature(mode):
    """Guards against π_ref scored at temperature 1 while the policy samples at T: at initialization the policy
    is the reference, so their per-token log-probs (both of softmax(logits / T)) must be equal."""
    policy = make_trainable(load("tiny-llama"), AdapterConfig(mode=mode, r=4, alpha=8))
    frozen = frozen_reference(policy, AdapterConfig(mode=mode))
    batch = rollout(policy, PROMPTS, GenerationConfig(max_new_tokens=6, seed=3, temperature=0.5), frozen)
    mask = batch.response_mask
    assert mask.sum() > 0 and batch.temperature == 0.5
    torch.testing.assert_close(batch.ref_logprobs, batch.logprobs)
    # by hand: log softmax(logits / 0.5) of the sampled tokens under the reference
    ref = frozen if frozen is not None else policy.model
    ids, start = batch.input_ids, batch.response_start
    with torch.no_grad(), policy.model.disable_adapter() if frozen is None else contextlib.nullcontext():
        positions = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
        logits = ref(input_ids=ids, attention_mask=batch.attention_mask, position_ids=positions).logits.float()
    manual = torch.log_softmax(logits[:, start - 1:-1] / 0.5, -1).gather(-1, ids[:, start:, None]).squeeze(-1)
    torch.testing.assert_close(batch.ref_logprobs, manual * mask, atol=1e-4, rtol=1e-4)


def test_rl_trainers_see_zero_kl_and_ratio_one_at_init_when_sampling_at_a_temperature(monkeypatch):
    """The same at the level of the trainers: with T = 0.5 and LoRA at init, RLOO's and PPO's KL to the
    reference is 0 and PPO's first update has ratio 1 (nothing clipped); every pass of the updates (the
    gradient's log-probs) is at T too - not so if any pass is at T = 1."""
    from superalign.rlhf import ppo, rloo

    temperatures = []

    def spy(module):
        real = module.forward_response

        def forward_response(*args, **kwargs):  # (model, ids, mask, start, value_head=None, temperature=1.0)
            temperatures.append(args[5] if len(args) > 5 else kwargs.get("temperature", 1.0))
            return real(*args, **kwargs)

        monkeypatch.setattr(module, "forward_response", forward_response)

    spy(rloo), spy(ppo)
    adapter = AdapterConfig(r=4, alpha=8)
    result = rloo.train_rloo(tiny_policy(), PROMPTS, fraction_of_a, rloo.RLOOConfig(
        steps=1, prompts_per_step=2, k=2, max_new_tokens=6, temperature=0.5, adapter=adapter))
    assert result.history[0]["kl"] == pytest.approx(0.0, abs=1e-6)
    result = ppo.train_ppo(tiny_policy(), PROMPTS, fraction_of_a, ppo.PPOConfig(
        steps=1, prompts_per_step=2, minibatch_size=2, ppo_epochs=1, max_new_tokens=6, temperature=0.5,
        adapter=adapter))
    assert result.history[0]["kl"] == pytest.approx(0.0, abs=1e-6)
    assert result.history[0]["clipfrac"] == 0.0
    assert len(temperatures) == 2 and set(temperatures) == {0.5}  # one RLOO update, one PPO update
