"""Rollouts: per-token log-probs, layout, and KL = 0 before any training (tiny-llama, LoRA at init)."""

import pytest
import torch

from superalign.models import GenerationConfig, load
from superalign.rlhf.common import AdapterConfig, make_trainable
from superalign.rlhf.rollout import (
    logprobs_from_logits,
    prompt_batches,
    rollout,
    token_logprobs,
)

PROMPTS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "user", "content": "a considerably longer prompt than the other one"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}],
]


@pytest.fixture(scope="module")
def policy():
    return make_trainable(load("tiny-llama"), AdapterConfig(r=4, alpha=8))


def test_token_logprobs_equal_manual_log_softmax_gather(policy):
    torch.manual_seed(0)
    ids = torch.randint(0, 250, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding on row 1
    start = 5
    got = token_logprobs(policy.model, ids, mask, start)  # [2, 4]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = policy.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    manual = torch.log_softmax(logits, -1)[:, start - 1 : -1].gather(-1, ids[:, start:, None]).squeeze(-1)
    assert got.shape == (2, 4)
    torch.testing.assert_close(got, manual, atol=1e-5, rtol=1e-5)


def test_logprobs_from_logits_matches_log_softmax():
    logits = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]]])
    targets = torch.tensor([[2, 0]])
    expected = torch.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)
    torch.testing.assert_close(logprobs_from_logits(logits, targets), expected)


def test_rollout_layout_and_zero_kl_at_init(policy):
    gen = GenerationConfig(max_new_tokens=6, seed=0)
    batch = rollout(policy, PROMPTS, gen)
    b, t = batch.response_ids.shape
    assert b == 3 and t <= 6 + 1
    assert batch.logprobs.shape == batch.ref_logprobs.shape == batch.response_mask.shape == (b, t)
    assert batch.input_ids.shape[1] == batch.query_ids.shape[1] + t
    # LoRA B = 0 at init: the policy is the reference, so the per-token KL is exactly zero at step 0.
    torch.testing.assert_close(batch.logprobs, batch.ref_logprobs)
    assert (batch.logprobs * batch.response_mask).sum() < 0  # real log-probs, not zeros
    assert torch.all(batch.logprobs[batch.response_mask == 0] == 0)
    # the response ids are the sampled ones, and a prompt's last token is at column q - 1
    assert (batch.query_mask[:, -1] == 1).all()


def test_rollout_logprobs_are_of_the_sampled_tokens(policy):
    gen = GenerationConfig(max_new_tokens=5, seed=1)
    batch = rollout(policy, PROMPTS[:2], gen)
    direct = token_logprobs(policy.model, batch.input_ids, batch.attention_mask, batch.response_start)
    torch.testing.assert_close(batch.logprobs, direct.detach() * batch.response_mask)


def test_rollout_logprobs_are_at_the_sampling_temperature(policy):
    batch = rollout(policy, PROMPTS[:2], GenerationConfig(max_new_tokens=5, seed=1, temperature=0.5))
    assert batch.temperature == 0.5 and batch.select([1]).temperature == 0.5
    at_t = token_logprobs(policy.model, batch.input_ids, batch.attention_mask, batch.response_start, 0.5)
    at_1 = token_logprobs(policy.model, batch.input_ids, batch.attention_mask, batch.response_start)
    torch.testing.assert_close(batch.logprobs, at_t.detach() * batch.response_mask)
    assert not torch.allclose(batch.logprobs, at_1.detach() * batch.response_mask)
    greedy = rollout(policy, PROMPTS[:1], GenerationConfig(max_new_tokens=3, do_sample=False, temperature=0.5))
    assert greedy.temperature == 1.0  # argmax has no temperature: plain log-probs


def test_rollout_moves_away_from_reference_after_change(policy):
    gen = GenerationConfig(max_new_tokens=4, seed=2)
    lora_b = [p for n, p in policy.model.named_parameters() if "lora_B" in n]
    saved = [p.detach().clone() for p in lora_b]
    try:
        with torch.no_grad():
            for p in lora_b:
                p.add_(0.5)
        batch = rollout(policy, PROMPTS[:2], gen)
        assert not torch.allclose(batch.logprobs, batch.ref_logprobs)
    finally:
        with torch.no_grad():
            for p, s in zip(lora_b, saved):
                p.copy_(s)


def test_prompt_batches_cover_every_prompt_before_repeating():
    batches = prompt_batches(5, 2, 5, seed=0)
    assert all(len(b) == 2 for b in batches)
    flat = [i for b in batches for i in b]
    assert sorted(flat[:5]) == [0, 1, 2, 3, 4]
    assert batches == prompt_batches(5, 2, 5, seed=0)


def test_eval_schedule():
    from superalign.models import load
    from superalign.rlhf.common import run_training

    calls = []
    result = run_training("x", load("tiny-llama"), 7, lambda step: {"loss": 0.0}, eval_every=3,
                          eval_hook=lambda step, lm: calls.append(step))
    assert calls == [0, 3, 6, 7] and result.steps == 7 and [r["step"] for r in result.history] == list(range(1, 8))
