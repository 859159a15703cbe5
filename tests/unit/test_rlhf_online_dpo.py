"""Online DPO: the reward model's pair per prompt by hand, then end to end on tiny-llama."""

import math

import numpy as np
import pytest
import torch

from superalign.models import load
from superalign.models.generation import completion_logprobs
from superalign.rlhf import online_dpo as online_module
from superalign.rlhf.common import AdapterConfig, TrainingDiverged, make_trainable, trainable_state
from superalign.rlhf.online_dpo import OnlineDPOConfig, reward_model_pairs, train_online_dpo
from tests.unit.rl_common import ADAPTER, PROMPTS, fraction_of_a, tiny_policy



def tiny_config(**overrides) -> OnlineDPOConfig:
    base = dict(rounds=2, prompts_per_round=2, k=3, max_new_tokens=6, lr=1e-2, adapter=ADAPTER)
    return OnlineDPOConfig(**{**base, **overrides})



@pytest.fixture
def policy():
    return tiny_policy()


def test_reward_model_pairs_by_hand():
    prompts = [[{"role": "user", "content": "p"}]] * 3
    replies = [["x", "y", "z"], ["same", "same"], ["u", "v"]]
    scores = [np.array([0.2, 0.9, -1.0]), np.array([1.0, 0.0]), np.array([0.5, 0.5])]
    pairs = reward_model_pairs(prompts, replies, scores, ids=["a", "b", "c"])
    # b: best and worst are the same text (no pair); c: a score tie keeps the first reply for both
    assert [(p.task_id, p.chosen, p.rejected) for p in pairs] == [("a", "y", "z")]
    assert pairs[0].meta["margin"] == pytest.approx(1.9) and pairs[0].labeler == "reward_model"


def test_online_dpo_end_to_end_history_and_eval_schedule(policy):
    before = trainable_state(policy.model)
    calls = []
    result = train_online_dpo(policy, PROMPTS, fraction_of_a, tiny_config(),
                              eval_hook=lambda step, lm: calls.append(step), eval_every=5)
    assert calls == [0, 2] and result.method == "online_dpo" and result.steps == 2
    for row in result.history:
        assert {"step", "pairs", "proxy", "proxy_margin", "dpo_steps"} <= row.keys()
        assert all(math.isfinite(v) for v in row.values())
    assert sum(row["pairs"] for row in result.history) > 0
    after = trainable_state(policy.model)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_online_dpo_makes_the_reward_models_choice_more_likely(policy, monkeypatch):
    """One round: each pair's chosen reply gains log-probability against the reference, relative to its rejected."""
    seen, real_pairs = [], online_module.reward_model_pairs

    def capture(*args, **kwargs):
        seen.extend(real_pairs(*args, **kwargs))
        return seen

    monkeypatch.setattr(online_module, "reward_model_pairs", capture)
    # A reward that almost never ties (the mean code point), so a round always yields pairs. lr 1e-2: at
    # 3e-2, three Adam epochs on two pairs overshot and the margin came out negative.
    low_code_points = lambda prompts, replies: torch.tensor([-sum(map(ord, r)) / max(len(r), 1) for r in replies])  # noqa: E731
    train_online_dpo(policy, PROMPTS, low_code_points, tiny_config(rounds=1, lr=1e-2, epochs=3))
    assert seen
    prompts = [p.prompt for p in seen]

    def logratio(replies):
        new = completion_logprobs(policy, prompts, replies)
        with policy.model.disable_adapter():
            ref = completion_logprobs(policy, prompts, replies)
        return new - ref

    margin = logratio([p.chosen for p in seen]) - logratio([p.rejected for p in seen])
    assert float(margin.mean()) > 0


def test_nan_reward_restores_saves_and_raises(policy, tmp_path):
    calls = {"n": 0}

    def reward(prompts, responses):
        calls["n"] += 1
        return fraction_of_a(prompts, responses) * (float("nan") if calls["n"] == 2 else 1.0)

    states = []
    with pytest.raises(TrainingDiverged, match="reward became nan at step 2") as info:
        train_online_dpo(policy, PROMPTS, reward, tiny_config(rounds=3), out_dir=tmp_path / "ckpt",
                         eval_hook=lambda step, lm: states.append(trainable_state(lm.model)), eval_every=1)
    assert info.value.result.steps == 1
    assert (tmp_path / "ckpt" / "adapter_config.json").exists()
    now = trainable_state(policy.model)
    assert all(torch.equal(now[k], states[-1][k]) for k in now)


def test_a_pick_function_replaces_the_reward_models_choice(policy):
    seen = []

    def pick(indices, replies):
        seen.append((list(indices), [len(r) for r in replies]))
        return []  # nothing to learn: the round trains no step

    before = trainable_state(policy.model)
    result = train_online_dpo(policy, PROMPTS, fraction_of_a, tiny_config(rounds=1, judge="labeler"), pick=pick)
    assert seen == [([1, 0], [3, 3])] or seen == [([0, 1], [3, 3])]
    assert result.history[0]["pairs"] == 0 and result.history[0]["dpo_steps"] == 0
    after = trainable_state(policy.model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="needs a pick function"):
        train_online_dpo(policy, PROMPTS, fraction_of_a, tiny_config(judge="labeler"))


def test_full_fine_tuning_keeps_the_starting_weights_as_reference(monkeypatch):
    policy = make_trainable(load("tiny-llama"), AdapterConfig(mode="full"))
    start = {k: v.detach().clone() for k, v in policy.model.state_dict().items()}
    frozen_seen, real_reference = [], online_module.reference_logprobs

    def capture(*args, frozen=None, **kwargs):
        frozen_seen.append(frozen)
        return real_reference(*args, frozen=frozen, **kwargs)

    monkeypatch.setattr(online_module, "reference_logprobs", capture)
    by_position = lambda prompts, replies: torch.arange(len(replies), dtype=torch.float)  # last beats first
    train_online_dpo(policy, PROMPTS, by_position, tiny_config(rounds=2, lr=1e-4, adapter=AdapterConfig(mode="full")))
    assert len(frozen_seen) == 2 and frozen_seen[0] is frozen_seen[1] is not None
    assert all(torch.equal(v, start[k]) for k, v in frozen_seen[0].state_dict().items())
    assert any(not torch.equal(v, start[k]) for k, v in policy.model.state_dict().items())  # the policy moved
