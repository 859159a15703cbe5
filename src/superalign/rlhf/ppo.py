"""PPO in the InstructGPT form (Ouyang et al. 2022; Ziegler et al. 2019; Schulman et al. 2017, 2016).

Written here because TRL no longer ships PPO. One step, top to bottom (`train_ppo`):

1. rollout: sample a reply per prompt, score the sampled tokens under the policy (old log-probs and
   values) and under the reference policy (the same model, adapters disabled) - once, no grad;
2. reward: the reward model scores each reply; the per-token reward is the KL penalty
   −β (log π − log π_ref) on every response token plus the RM score on the last one;
3. advantages: GAE over the response tokens, whitened over the batch;
4. update: `ppo_epochs` passes over shuffled minibatches of the clipped surrogate + clipped value loss
   (+ γ · pretraining NLL when pretraining texts are given: PPO-ptx).

Value function: a linear head on the policy's final hidden state (shared trunk; the trunk is trained
through its LoRA adapters by both losses). InstructGPT instead trains a separate value model initialised
from the reward model; sharing the trunk halves memory and forward passes on a CPU at the cost of the
value loss pulling on the policy's features, which is why `vf_coef` is small. The head starts at zero, so
the first advantages are the (whitened) returns themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    save_checkpoint,
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
from superalign.rlhf.config import PPOConfig  # noqa: F401 - re-exported


# ---------------------------------------------------------------------------------------------------
# The formulas. Tensors are [batch, t] over response tokens; `mask` is 1 on real tokens, a prefix of
# each row (right padding).


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x − mean) / std over the real tokens of the batch (Ziegler et al. 2019's whitening)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def kl_penalized_rewards(score: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                         mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """Per-token reward r_t = −β (log π(y_t) − log π_ref(y_t)), plus the RM score on the last token.

    Ziegler et al. 2019 §2 (R(x, y) = r(x, y) − β log π(y|x)/ρ(y|x)), Ouyang et al. 2022 eq. 2, spread
    over tokens as in their implementations. score [b], others [b, t] -> [b, t].
    """
    rewards = -kl_coef * (logprobs - ref_logprobs) * mask
    last = (mask.sum(-1).long() - 1).clamp(min=0)  # index of each row's last real token
    has_tokens = (mask.sum(-1) > 0).to(rewards.dtype)
    return rewards.scatter_add(1, last.unsqueeze(1), (score * has_tokens).unsqueeze(1).to(rewards.dtype))


@dataclass
class Advantages:
    advantages: torch.Tensor  # [b, t] Â_t
    returns: torch.Tensor  # [b, t] Â_t + V(s_t): the value targets


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float) -> Advantages:
    """Generalized advantage estimation, Schulman et al. 2016 eq. 11-16:

    δ_t = r_t + γ V(s_{t+1}) − V(s_t),  Â_t = Σ_l (γλ)^l δ_{t+l}
    (computed backwards: Â_t = δ_t + γλ Â_{t+1}).
    The state after a row's last real token is terminal (V = 0), so padding never leaks in.
    """
    next_mask = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)
    next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=1) * next_mask
    deltas = rewards + gamma * next_values - values
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        running = deltas[:, t] + gamma * lam * next_mask[:, t] * running
        advantages[:, t] = running
    advantages = advantages * mask
    return Advantages(advantages=advantages, returns=(advantages + values) * mask)


def ppo_policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                    mask: torch.Tensor, clip_range: float) -> torch.Tensor:
    """Clipped surrogate, Schulman et al. 2017 eq. 7, as a loss (negated), averaged over real tokens:

    L = −E_t[min(ρ_t Â_t, clip(ρ_t, 1 − ε, 1 + ε) Â_t)],  ρ_t = π(y_t) / π_old(y_t).
    """
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range) * advantages
    return -masked_mean(torch.minimum(unclipped, clipped), mask)


def clip_fraction(logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor,
                  clip_range: float) -> torch.Tensor:
    """Share of real tokens whose ratio left [1 − ε, 1 + ε] (a health signal of the update size)."""
    ratio = torch.exp(logprobs - old_logprobs)
    return masked_mean(((ratio - 1.0).abs() > clip_range).float(), mask)


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               value_clip: float) -> torch.Tensor:
    """Clipped value loss (the PPO implementations of Ziegler et al. 2019 / OpenAI baselines ppo2):

    ½ E_t[max((V − R)², (V_old + clip(V − V_old, −c, c) − R)²)], a trust region for the value function.
    """
    clipped = old_values + torch.clamp(values - old_values, -value_clip, value_clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


def sequence_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sampled estimate of KL(π || π_ref) per sequence: Σ_t (log π − log π_ref) over real tokens. -> [b]."""
    return ((logprobs - ref_logprobs) * mask).sum(-1)


# ---------------------------------------------------------------------------------------------------
# Training


def value_head_for(policy: LoadedModel) -> torch.nn.Linear:
    """V(s) = w·h + b on the policy's final hidden state h; zero-initialised (V ≡ 0 before training)."""
    hidden = policy.model.config.get_text_config().hidden_size
    device = next(policy.model.parameters()).device
    head = torch.nn.Linear(hidden, 1).to(device)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    return head


def _ptx_nll(policy: LoadedModel, texts: list[str], max_length: int) -> torch.Tensor:
    """Mean token NLL of pretraining texts: −E[log π(x_pretrain)], the ptx term of Ouyang et al. eq. 2."""
    tok = policy.tokenizer
    enc = [tok(t, add_special_tokens=False)["input_ids"][:max_length] for t in texts]
    enc = [ids for ids in enc if len(ids) >= 2]
    if not enc:
        return torch.zeros(())
    pad = int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    width = max(len(ids) for ids in enc)
    ids = torch.full((len(enc), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, seq in enumerate(enc):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    device = next(policy.model.parameters()).device
    labels = ids.masked_fill(mask == 0, -100)
    return policy.model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss


@dataclass
class _Update:
    loss: float
    policy_loss: float
    value_loss: float
    ptx_loss: float
    clipfrac: float
    entropy: float
    grad_norm: float


def _ppo_update(policy: LoadedModel, value_head: torch.nn.Module, batch: Rollout, adv: Advantages,
                optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], config: PPOConfig,
                ptx_texts: list[str], step: int) -> _Update:
    """One optimizer update on a minibatch: clipped surrogate + vf_coef · value loss (+ ptx_coef · NLL)."""
    model = policy.model
    device = next(model.parameters()).device
    mask = batch.response_mask.to(device)
    with autocast_context(model, default_autocast(model, "train")):
        out = forward_response(model, batch.input_ids.to(device), batch.attention_mask.to(device),
                               batch.response_start, value_head, batch.temperature)
        pg = ppo_policy_loss(out.logprobs, batch.logprobs.to(device), adv.advantages.to(device), mask,
                             config.clip_range)
        vf = value_loss(out.values, batch.values.to(device), adv.returns.to(device), mask, config.value_clip)
        loss = pg + config.vf_coef * vf
        ptx = torch.zeros((), device=device)
        if config.ptx_coef > 0 and ptx_texts:
            ptx = _ptx_nll(policy, ptx_texts, config.ptx_max_length)
            loss = loss + config.ptx_coef * ptx
    check_finite(step, loss=loss.item())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
    check_finite(step, grad_norm=grad_norm.item())
    optimizer.step()
    with torch.no_grad():
        clipfrac = clip_fraction(out.logprobs, batch.logprobs.to(device), mask, config.clip_range)
        entropy = masked_mean(entropy_from_logits(out.logits), mask)
    return _Update(loss=loss.item(), policy_loss=pg.item(), value_loss=vf.item(), ptx_loss=ptx.item(),
                   clipfrac=clipfrac.item(), entropy=entropy.item(), grad_norm=grad_norm.item())


def _mean(rows: list[_Update], name: str) -> float:
    return sum(getattr(r, name) for r in rows) / len(rows)


def train_ppo(policy: LoadedModel, prompts: list[list[dict]], reward_fn: RewardFn, config: PPOConfig, *,
              pretrain_texts: list[str] | None = None, progress: Progress | None = None,
              eval_hook: EvalHook | None = None, eval_every: int = 0, out_dir: Path | None = None) -> TrainResult:
    """Optimize `policy` (already trainable, trained in place) against `reward_fn` with PPO.

    `prompts` are chat message lists; each step samples `prompts_per_step` of them. `history` has one
    row per PPO step: step, loss, policy_loss, value_loss, ptx_loss, kl (nats per sequence, from the
    rollout, before the update), proxy (mean reward-model score), reward (mean KL-penalized return),
    clipfrac, entropy, grad_norm, updates, response_tokens. On a NaN/inf reward, loss or gradient:
    restores the state from before that step, saves it to `out_dir`, and raises TrainingDiverged with
    `err.result` set.
    """
    torch.manual_seed(config.seed)
    frozen = frozen_reference(policy, config.adapter)
    value_head = value_head_for(policy)
    params = trainable_params(policy.model)
    params += list(value_head.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr)
    ptx_texts = list(pretrain_texts or [])
    batches = prompt_batches(len(prompts), config.prompts_per_step, config.steps, config.seed)
    shuffle = torch.Generator().manual_seed(config.seed)
    n_updates = 0

    def step_fn(step: int) -> dict:
        nonlocal n_updates
        gen = GenerationConfig(max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                               seed=config.seed + step, batch_size=config.prompts_per_step)
        batch = rollout(policy, [prompts[i] for i in batches[step - 1]], gen, frozen, value_head=value_head)
        scores = as_scores(reward_fn(batch.prompts, batch.responses), len(batch.responses))
        kl = sequence_kl(batch.logprobs, batch.ref_logprobs, batch.response_mask)
        check_finite(step, reward=scores.mean().item(), kl=kl.mean().item())
        rewards = kl_penalized_rewards(scores, batch.logprobs, batch.ref_logprobs, batch.response_mask,
                                       config.kl_coef)
        adv = gae(rewards, batch.values, batch.response_mask, config.gamma, config.lam)
        if config.whiten_advantages:
            adv = Advantages(masked_whiten(adv.advantages, batch.response_mask), adv.returns)
        updates = []
        for _ in range(config.ppo_epochs):
            order = torch.randperm(len(batch.prompts), generator=shuffle)
            for lo in range(0, len(order), config.minibatch_size):
                rows = order[lo : lo + config.minibatch_size]
                sub_adv = Advantages(adv.advantages[rows], adv.returns[rows])
                ptx = _ptx_batch(ptx_texts, n_updates, config.minibatch_size)
                updates.append(_ppo_update(policy, value_head, batch.select(rows), sub_adv, optimizer,
                                           params, config, ptx, step))
                n_updates += 1
        return {"loss": _mean(updates, "loss"), "policy_loss": _mean(updates, "policy_loss"),
                "value_loss": _mean(updates, "value_loss"), "ptx_loss": _mean(updates, "ptx_loss"),
                "kl": kl.mean().item(), "proxy": scores.mean().item(), "reward": rewards.sum(-1).mean().item(),
                "clipfrac": _mean(updates, "clipfrac"), "entropy": _mean(updates, "entropy"),
                "grad_norm": _mean(updates, "grad_norm"), "updates": len(updates),
                "response_tokens": int(batch.response_mask.sum()), "tokens": batch.n_tokens}

    # The value head is trained too: it is restored with the policy on divergence and saved beside it.
    return run_training("ppo", policy, config.steps, step_fn, progress=progress, eval_hook=eval_hook,
                        eval_every=eval_every, out_dir=out_dir, modules=[policy.model, value_head],
                        save=lambda directory: _save(policy, value_head, directory))


def _ptx_batch(texts: list[str], offset: int, size: int) -> list[str]:
    """A rotating window of `size` pretraining texts (deterministic)."""
    if not texts:
        return []
    return [texts[(offset * size + i) % len(texts)] for i in range(size)]


def _save(policy: LoadedModel, value_head: torch.nn.Module, directory: Path) -> Path:
    path = save_checkpoint(policy, directory)
    torch.save(value_head.state_dict(), path / "value_head.pt")
    return path
