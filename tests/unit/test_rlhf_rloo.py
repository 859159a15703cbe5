"""RLOO: the leave-one-out advantage by hand, then end to end on tiny-llama."""

import math

import pytest
import torch

from superalign.rlhf import rloo as rloo_module
from superalign.rlhf.common import TrainingDiverged, trainable_state
from superalign.rlhf.rloo import RLOOConfig, reinforce_loss, rloo_advantages, rloo_rewards, train_rloo
from superalign.rlhf.rollout import token_logprobs
from tests.unit.rl_common import ADAPTER, PROMPTS, fraction_of_a, tiny_policy



def tiny_config(**overrides) -> RLOOConfig:
    base = dict(steps=2, prompts_per_step=1, k=3, max_new_tokens=6, lr=1e-2, adapter=ADAPTER)
    return RLOOConfig(**{**base, **overrides})



@pytest.fixture
def policy():
    return tiny_policy()


def test_rloo_advantages_by_hand():
    rewards = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]])
    adv = rloo_advantages(rewards)
    # row 0: baselines (2+3)/2, (1+3)/2, (1+2)/2; row 1: 3, 3, 0
    torch.testing.assert_close(adv, torch.tensor([[-1.5, 0.0, 1.5], [-3.0, -3.0, 6.0]]))
    torch.testing.assert_close(adv.sum(-1), torch.zeros(2))


def test_rloo_advantages_need_two_samples():
    with pytest.raises(ValueError, match="k >= 2"):
        rloo_advantages(torch.ones(2, 1))


def test_rloo_rewards_subtract_the_sequence_kl():
    logprobs = torch.tensor([[-1.0, -2.0, -9.0]])
    ref = torch.tensor([[-1.5, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # the third token is padding
    # KL_seq = 0.5 + (−1) = −0.5; R = 2 − 0.1 · (−0.5)
    torch.testing.assert_close(rloo_rewards(torch.tensor([2.0]), logprobs, ref, mask, 0.1), torch.tensor([2.05]))


def test_reinforce_loss_is_minus_advantage_weighted_logprob():
    loss = reinforce_loss(torch.tensor([-2.0, -4.0]), torch.tensor([1.0, -1.0]))
    torch.testing.assert_close(loss, torch.tensor(-(1.0 * -2.0 + -1.0 * -4.0) / 2))


def test_rloo_end_to_end_history_and_eval_schedule(policy):
    before = trainable_state(policy.model)
    calls = []
    result = train_rloo(policy, PROMPTS, fraction_of_a, tiny_config(steps=2),
                        eval_hook=lambda step, lm: calls.append(step), eval_every=5)
    assert calls == [0, 2]  # step 0 and the end
    assert result.method == "rloo" and result.steps == 2
    for row in result.history:
        assert {"step", "loss", "kl", "proxy", "reward", "entropy"} <= row.keys()
        assert all(math.isfinite(v) for v in row.values())
    assert result.history[0]["kl"] == pytest.approx(0.0, abs=1e-6)
    after = trainable_state(policy.model)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_rloo_makes_the_rewarded_reply_more_likely(policy, monkeypatch):
    """k = 3 replies, only the first rewarded: its log-prob rises vs π_ref, the others fall."""
    seen, real_rollout = [], rloo_module.rollout

    def capture(*args, **kwargs):
        seen.append(real_rollout(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(rloo_module, "rollout", capture)
    reward = lambda prompts, responses: torch.tensor([1.0, 0.0, 0.0])
    train_rloo(policy, PROMPTS, reward, tiny_config(steps=1, kl_coef=0.0, lr=3e-2))
    batch = seen[0]
    args = (batch.input_ids, batch.attention_mask, batch.response_start)
    with torch.no_grad():
        new = (token_logprobs(policy.model, *args) * batch.response_mask).sum(-1)
        with policy.model.disable_adapter():
            ref = (token_logprobs(policy.model, *args) * batch.response_mask).sum(-1)
    gain = new - ref
    assert gain[0] > 0 and gain[0] > gain[1] and gain[0] > gain[2]


def test_nan_reward_restores_saves_and_raises(policy, tmp_path):
    calls = {"n": 0}

    def reward(prompts, responses):
        calls["n"] += 1
        return fraction_of_a(prompts, responses) * (float("nan") if calls["n"] == 2 else 1.0)

    states = []
    with pytest.raises(TrainingDiverged, match="reward became nan at step 2") as info:
        train_rloo(policy, PROMPTS, reward, tiny_config(steps=3), out_dir=tmp_path / "ckpt",
                   eval_hook=lambda step, lm: states.append(trainable_state(lm.model)), eval_every=1)
    result = info.value.result
    assert result.steps == 1 and "step 2" in result.diverged
    assert (tmp_path / "ckpt" / "adapter_config.json").exists()
    now = trainable_state(policy.model)
    assert all(torch.equal(now[k], states[-1][k]) for k in now)


def test_reward_fn_must_return_one_score_per_reply(policy):
    with pytest.raises(ValueError, match="returned 1 scores for 3 responses"):
        train_rloo(policy, PROMPTS, lambda p, r: torch.tensor([1.0]), tiny_config(steps=1))
