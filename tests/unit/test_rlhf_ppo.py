"""PPO: the formulas on hand-computed tiny examples, then end to end on tiny-llama."""

import math

import pytest
import torch

from superalign.rlhf import ppo as ppo_module
from superalign.rlhf.common import TrainingDiverged, trainable_state
from superalign.rlhf.ppo import (
    PPOConfig,
    gae,
    kl_penalized_rewards,
    masked_whiten,
    ppo_policy_loss,
    train_ppo,
    value_loss,
)
from superalign.rlhf.rollout import token_logprobs
from tests.unit.rl_common import ADAPTER, PROMPTS, fraction_of_a, tiny_policy



def tiny_config(**overrides) -> PPOConfig:
    base = dict(steps=2, prompts_per_step=2, max_new_tokens=6, minibatch_size=2, ppo_epochs=1, lr=1e-2,
                adapter=ADAPTER)
    return PPOConfig(**{**base, **overrides})



@pytest.fixture
def policy():
    return tiny_policy()


# --- formulas ------------------------------------------------------------------------------------


def test_kl_penalized_rewards_by_hand():
    logprobs = torch.tensor([[-1.0, -2.0, -0.5]])
    ref = torch.tensor([[-1.5, -1.0, -0.5]])
    mask = torch.ones(1, 3)
    rewards = kl_penalized_rewards(torch.tensor([2.0]), logprobs, ref, mask, kl_coef=0.1)
    # −0.1 · (0.5, −1, 0), plus the score 2 on the last token
    torch.testing.assert_close(rewards, torch.tensor([[-0.05, 0.1, 2.0]]))


def test_kl_penalized_rewards_put_the_score_on_the_last_real_token():
    zeros = torch.zeros(2, 3)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    rewards = kl_penalized_rewards(torch.tensor([1.0, 3.0]), zeros, zeros, mask, kl_coef=0.1)
    torch.testing.assert_close(rewards, torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 3.0]]))


def test_gae_gamma_1_lambda_095_by_hand():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.2, 0.1]])
    out = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=0.95)
    # δ = (0 + 0.2 − 0.5, 0 + 0.1 − 0.2, 1 − 0.1) = (−0.3, −0.1, 0.9); Â_t = δ_t + 0.95 Â_{t+1}
    a2 = 0.9
    a1 = -0.1 + 0.95 * a2
    a0 = -0.3 + 0.95 * a1
    torch.testing.assert_close(out.advantages, torch.tensor([[a0, a1, a2]]))
    torch.testing.assert_close(out.returns, torch.tensor([[a0 + 0.5, a1 + 0.2, a2 + 0.1]]))


def test_gae_gamma_09_lambda_1_is_discounted_return_minus_value():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.2, 0.1]])
    out = gae(rewards, values, torch.ones(1, 3), gamma=0.9, lam=1.0)
    torch.testing.assert_close(out.advantages, torch.tensor([[0.81 - 0.5, 0.9 - 0.2, 1.0 - 0.1]]))
    torch.testing.assert_close(out.returns, torch.tensor([[0.81, 0.9, 1.0]]))


def test_gae_ignores_padding_after_the_last_token():
    rewards = torch.tensor([[0.0, 1.0, 5.0]])  # the padded reward and value must not leak back
    values = torch.tensor([[0.5, 0.2, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    out = gae(rewards, values, mask, gamma=0.9, lam=0.95)
    a1 = 1.0 - 0.2  # the state after the last real token is terminal
    a0 = (0.0 + 0.9 * 0.2 - 0.5) + 0.9 * 0.95 * a1
    torch.testing.assert_close(out.advantages, torch.tensor([[a0, a1, 0.0]]))
    assert out.returns[0, 2] == 0


def test_clipped_policy_loss_inside_the_clip_range():
    old = torch.zeros(1, 1)
    new = torch.full((1, 1), math.log(1.1))  # ratio 1.1, inside [0.8, 1.2]
    loss = ppo_policy_loss(new, old, torch.tensor([[2.0]]), torch.ones(1, 1), clip_range=0.2)
    torch.testing.assert_close(loss, torch.tensor(-2.2))


def test_clipped_policy_loss_outside_the_clip_range():
    old, mask = torch.zeros(1, 1), torch.ones(1, 1)
    up, down = torch.full((1, 1), math.log(1.5)), torch.full((1, 1), math.log(0.5))
    pos, neg = torch.tensor([[1.0]]), torch.tensor([[-1.0]])
    # good action pushed past 1 + ε: the gain is capped at 1.2 · A
    torch.testing.assert_close(ppo_policy_loss(up, old, pos, mask, 0.2), torch.tensor(-1.2))
    # bad action pushed below 1 − ε: min(0.5 · −1, 0.8 · −1) = −0.8 (no credit for going further)
    torch.testing.assert_close(ppo_policy_loss(down, old, neg, mask, 0.2), torch.tensor(0.8))
    # bad action made more likely: the pessimistic unclipped term −1.5 is kept
    torch.testing.assert_close(ppo_policy_loss(up, old, neg, mask, 0.2), torch.tensor(1.5))


def test_policy_loss_averages_over_real_tokens_only():
    old = torch.zeros(1, 2)
    mask = torch.tensor([[1.0, 0.0]])
    loss = ppo_policy_loss(old, old, torch.tensor([[3.0, 100.0]]), mask, 0.2)
    torch.testing.assert_close(loss, torch.tensor(-3.0))


def test_value_loss_clips_the_value_update():
    old, returns, mask = torch.zeros(1, 1), torch.tensor([[1.0]]), torch.ones(1, 1)
    # V moved 0 -> 0.9, clipped to 0.2: max((0.9 − 1)², (0.2 − 1)²) / 2 = 0.32
    torch.testing.assert_close(value_loss(torch.tensor([[0.9]]), old, returns, mask, 0.2), torch.tensor(0.32))
    # inside the clip range it is the plain squared error / 2
    torch.testing.assert_close(value_loss(torch.tensor([[0.1]]), old, returns, mask, 0.2), torch.tensor(0.405))


def test_masked_whiten():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    out = masked_whiten(x, mask)
    real = out[mask.bool()]
    assert abs(real.mean().item()) < 1e-6
    assert abs(real.pow(2).mean().item() - 1) < 1e-4
    assert out[0, 3] == 0


# --- end to end on tiny-llama ----------------------------------------------------------------------


def test_ppo_end_to_end_history_and_eval_schedule(policy):
    before = trainable_state(policy.model)
    calls = []
    result = train_ppo(policy, PROMPTS, fraction_of_a, tiny_config(steps=3),
                       eval_hook=lambda step, lm: calls.append(step), eval_every=2)
    assert calls == [0, 2, 3]
    assert result.method == "ppo" and result.steps == 3 and result.diverged is None
    assert [row["step"] for row in result.history] == [1, 2, 3]
    for row in result.history:
        assert {"step", "loss", "kl", "proxy", "value_loss", "clipfrac", "entropy"} <= row.keys()
        assert all(math.isfinite(v) for v in row.values())
    assert result.history[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # LoRA at init: π = π_ref
    after = trainable_state(policy.model)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_ppo_makes_a_rewarded_reply_more_likely(policy, monkeypatch):
    """One PPO step where row 0 gets reward 1 and row 1 reward 0: row 0's log-prob must rise vs π_ref."""
    seen, real_rollout = [], ppo_module.rollout

    def capture(*args, **kwargs):
        seen.append(real_rollout(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(ppo_module, "rollout", capture)
    reward = lambda prompts, responses: torch.tensor([1.0, 0.0])
    train_ppo(policy, PROMPTS, reward, tiny_config(steps=1, kl_coef=0.0, ppo_epochs=2, lr=3e-2))
    batch = seen[0]
    args = (batch.input_ids, batch.attention_mask, batch.response_start)
    with torch.no_grad():
        new = (token_logprobs(policy.model, *args) * batch.response_mask).sum(-1)
        with policy.model.disable_adapter():
            ref = (token_logprobs(policy.model, *args) * batch.response_mask).sum(-1)
    assert new[0] - ref[0] > 0
    assert new[0] - ref[0] > new[1] - ref[1]


def test_ppo_with_pretraining_mix(policy):
    result = train_ppo(policy, PROMPTS, fraction_of_a, tiny_config(steps=1, ptx_coef=0.5),
                       pretrain_texts=["The cat sat on the mat.", "Water boils at 100 degrees."])
    assert result.history[0]["ptx_loss"] > 0


def test_nan_reward_stops_with_a_clear_message_and_restores(policy):
    calls = {"n": 0}

    def reward(prompts, responses):
        calls["n"] += 1
        if calls["n"] == 2:
            return torch.full((len(responses),), float("nan"))
        return fraction_of_a(prompts, responses) + 1.0

    states = []
    with pytest.raises(TrainingDiverged, match="reward became nan at step 2") as info:
        train_ppo(policy, PROMPTS, reward, tiny_config(steps=3),
                  eval_hook=lambda step, lm: states.append(trainable_state(lm.model)), eval_every=1)
    result = info.value.result
    assert result.steps == 1 and result.diverged and "step 2" in result.diverged
    now = trainable_state(policy.model)
    assert all(torch.equal(now[k], states[-1][k]) for k in now)  # the state after step 1


def test_divergence_saves_the_last_good_checkpoint(policy, tmp_path):
    reward = lambda prompts, responses: torch.full((len(responses),), float("inf"))
    with pytest.raises(TrainingDiverged) as info:
        train_ppo(policy, PROMPTS, reward, tiny_config(steps=1), out_dir=tmp_path / "ckpt")
    assert info.value.result.checkpoint == tmp_path / "ckpt"
    assert (tmp_path / "ckpt" / "adapter_config.json").exists()
    assert (tmp_path / "ckpt" / "value_head.pt").exists()


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="clip_range"):
        PPOConfig(clip_range=0)
    with pytest.raises(ValueError, match="unknown"):
        PPOConfig(unknown=1)
