"""RLOO: REINFORCE with a leave-one-out baseline (Ahmadian et al. 2024, "Back to Basics"; Kool et al. 2019).

One step, top to bottom (`train_rloo`):

1. rollout: k replies to each of `prompts_per_step` prompts, with log-probs under the policy and the
   reference (one no-grad pass each, see `rollout.py`);
2. sequence reward: R(x, y) = RM(x, y) − β KL_seq, KL_seq = Σ_t (log π − log π_ref) (Ahmadian §3);
3. advantage: R_i minus the mean reward of the other k − 1 replies to the same prompt (eq. 4);
4. update: one REINFORCE step on the sequence log-probability, −E[A_i log π(y_i | x)].

No value network and one update per batch: the whole response is one action (Ahmadian §3.2), which is
why it needs about half the forward/backward passes of PPO per sampled token.
"""

from __future__ import annotations

from pathlib import Path

import torch

from superalign.models import GenerationConfig, LoadedModel
from superalign.models.generation import autocast_context, default_autocast
from superalign.progress import Progress
from superalign.rlhf.common import (
    EvalHook,
    RewardFn,
    TrainResult,
    check_finite,
    frozen_reference,
    run_training,
    trainable_params,
)
from superalign.rlhf.rollout import (
    Rollout,
    as_scores,
    entropy_from_logits,
    forward_response,
    prompt_batches,
    rollout,
)
from superalign.rlhf.config import RLOOConfig  # noqa: F401 - re-exported


# ---------------------------------------------------------------------------------------------------
# The formulas


def rloo_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor,
                 kl_coef: float) -> torch.Tensor:
    """Sequence reward R = r(x, y) − β Σ_t (log π(y_t) − log π_ref(y_t)) (Ahmadian et al. 2024 §3, from
    Ziegler et al. 2019). scores [n], per-token tensors [n, t] -> [n]."""
    return scores - kl_coef * ((logprobs - ref_logprobs) * mask).sum(-1)


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """Leave-one-out advantage, Ahmadian et al. 2024 eq. 4 (Kool et al. 2019):

    A_i = R_i − 1/(k−1) Σ_{j≠i} R_j.  rewards [P, k] -> [P, k]; each row sums to zero.
    """
    k = rewards.shape[-1]
    if k < 2:
        raise ValueError("the leave-one-out baseline needs k >= 2 samples per prompt")
    baseline = (rewards.sum(-1, keepdim=True) - rewards) / (k - 1)
    return rewards - baseline


def reinforce_loss(seq_logprobs: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """REINFORCE (Williams 1992) on the whole reply as one action: −mean_i A_i log π(y_i | x). [n], [n] -> []."""
    return -(advantages.detach() * seq_logprobs).mean()


# ---------------------------------------------------------------------------------------------------
# Training


def _rloo_update(policy: LoadedModel, batch: Rollout, advantages: torch.Tensor, optimizer: torch.optim.Optimizer,
                 params: list[torch.nn.Parameter], config: RLOOConfig, step: int) -> dict:
    """One optimizer step; gradients accumulate over minibatches so the loss is the mean over all rows."""
    model = policy.model
    device = next(model.parameters()).device
    n = len(batch.prompts)
    optimizer.zero_grad(set_to_none=True)
    total, entropy = 0.0, 0.0
    for lo in range(0, n, config.minibatch_size):
        rows = list(range(lo, min(lo + config.minibatch_size, n)))
        sub = batch.select(rows)
        mask = sub.response_mask.to(device)
        with autocast_context(model, default_autocast(model, "train")):
            out = forward_response(model, sub.input_ids.to(device), sub.attention_mask.to(device), sub.response_start,
                                   temperature=sub.temperature)
            seq_logprobs = (out.logprobs * mask).sum(-1)
            loss = reinforce_loss(seq_logprobs, advantages[rows].to(device)) * len(rows) / n
        check_finite(step, loss=loss.item())
        loss.backward()
        total += loss.item()
        with torch.no_grad():
            entropy += ((entropy_from_logits(out.logits) * mask).sum() / mask.sum().clamp(min=1)).item() * len(rows) / n
    grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
    check_finite(step, grad_norm=grad_norm.item())
    optimizer.step()
    return {"loss": total, "entropy": entropy, "grad_norm": grad_norm.item()}


def train_rloo(policy: LoadedModel, prompts: list[list[dict]], reward_fn: RewardFn, config: RLOOConfig, *,
               progress: Progress | None = None, eval_hook: EvalHook | None = None, eval_every: int = 0,
               out_dir: Path | None = None) -> TrainResult:
    """Optimize `policy` (already trainable, trained in place) against `reward_fn` with RLOO.

    `history` has one row per optimizer step: step, loss, kl (nats per sequence), proxy (mean reward-model
    score), reward (mean KL-penalized sequence reward), entropy, grad_norm, response_tokens, tokens.
    Divergence (NaN/inf reward, loss or gradient): state from before the step restored, saved to `out_dir`,
    TrainingDiverged raised with `err.result` set.
    """
    torch.manual_seed(config.seed)
    frozen = frozen_reference(policy, config.adapter)
    params = trainable_params(policy.model)
    optimizer = torch.optim.AdamW(params, lr=config.lr)
    batches = prompt_batches(len(prompts), config.prompts_per_step, config.steps, config.seed)

    def step_fn(step: int) -> dict:
        # k copies of each prompt, grouped: rows [p*k, (p+1)*k) belong to prompt p.
        group = [prompts[i] for i in batches[step - 1] for _ in range(config.k)]
        gen = GenerationConfig(max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                               seed=config.seed + step, batch_size=len(group))
        batch = rollout(policy, group, gen, frozen)
        scores = as_scores(reward_fn(batch.prompts, batch.responses), len(group))
        kl = ((batch.logprobs - batch.ref_logprobs) * batch.response_mask).sum(-1)
        check_finite(step, reward=scores.mean().item(), kl=kl.mean().item())
        rewards = rloo_rewards(scores, batch.logprobs, batch.ref_logprobs, batch.response_mask, config.kl_coef)
        advantages = rloo_advantages(rewards.view(-1, config.k)).reshape(-1)
        update = _rloo_update(policy, batch, advantages, optimizer, params, config, step)
        return {**update, "kl": kl.mean().item(), "proxy": scores.mean().item(), "reward": rewards.mean().item(),
                "response_tokens": int(batch.response_mask.sum()), "tokens": batch.n_tokens}

    return run_training("rloo", policy, config.steps, step_fn, progress=progress, eval_hook=eval_hook,
                        eval_every=eval_every, out_dir=out_dir)
