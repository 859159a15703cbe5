"""Rollouts for on-policy RL (PPO, RLOO): sample responses, then score every response token once.

A rollout is one batch of experience: the policy samples a reply per prompt (seeded, see
`superalign.models.generation.generate_ids`), then one no-grad forward pass of the policy gives the
log-probabilities of the sampled tokens (the "old" policy of PPO) and, when a value head is passed, the
values V(s_t); one no-grad pass of the reference policy (the same model with its LoRA adapters disabled)
gives log π_ref. Nothing is recomputed later: the KL penalty and the PPO ratio use these tensors.

Log-probabilities are those of the distribution that sampled, softmax(logits / T) at the rollout's
temperature T, for the policy and the reference alike (as TRL's RLOO/GRPO do): with T = 0.7 but
log-probs at T = 1, REINFORCE and PPO would estimate the gradient of a policy that never sampled, and the
KL penalty would compare policies nobody ran.

Token layout (all tensors [batch, ...]): the prompt is left-padded to `q` columns and the response is
right-padded to `t` columns, so every response starts at column `q` of `input_ids` [b, q + t], and the
per-token tensors (`logprobs`, `ref_logprobs`, `values`, `response_mask`) are [b, t].
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import torch

from superalign.models import GenerationConfig, LoadedModel, generate_ids
from superalign.models.generation import (
    autocast_context,
    default_autocast,
    end_of_turn_id,
    eval_mode,
    left_pad,
    pad_id,
    prompt_ids,
    right_pad,
)
from superalign.rlhf.common import reference_policy


@dataclass
class Rollout:
    """One batch of sampled experience. Per-token tensors are [batch, t] over the response columns."""

    prompts: list[list[dict]]  # chat messages, one list per row
    responses: list[str]  # decoded replies (end-of-turn token not included)
    query_ids: torch.Tensor  # [b, q] prompt ids, left-padded
    query_mask: torch.Tensor  # [b, q] 1 on real prompt tokens
    response_ids: torch.Tensor  # [b, t] sampled ids (+ end-of-turn when the reply ended), right-padded
    response_mask: torch.Tensor  # [b, t] float, 1 on real response tokens
    logprobs: torch.Tensor  # [b, t] log π(y_t | x, y_<t) of the sampling policy (fp32, no grad)
    ref_logprobs: torch.Tensor  # [b, t] log π_ref(y_t | x, y_<t)
    values: torch.Tensor | None = None  # [b, t] V(s_t) when a value head was given (PPO)
    temperature: float = 1.0  # the sampling temperature; every log-prob of this batch is at it

    @property
    def input_ids(self) -> torch.Tensor:  # [b, q + t]
        return torch.cat([self.query_ids, self.response_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:  # [b, q + t]
        return torch.cat([self.query_mask, self.response_mask.long()], dim=1)

    @property
    def response_start(self) -> int:
        return self.query_ids.shape[1]

    @property
    def n_tokens(self) -> int:
        """Real (non-padding) prompt + response tokens: the work a step does."""
        return int(self.query_mask.sum()) + int(self.response_mask.sum())

    def select(self, rows: list[int] | torch.Tensor) -> "Rollout":
        """The sub-batch of the given rows (PPO minibatches)."""
        idx = torch.as_tensor(rows, dtype=torch.long)
        return Rollout(
            prompts=[self.prompts[i] for i in idx.tolist()],
            responses=[self.responses[i] for i in idx.tolist()],
            query_ids=self.query_ids[idx], query_mask=self.query_mask[idx],
            response_ids=self.response_ids[idx], response_mask=self.response_mask[idx],
            logprobs=self.logprobs[idx], ref_logprobs=self.ref_logprobs[idx],
            values=None if self.values is None else self.values[idx], temperature=self.temperature)


# ---------------------------------------------------------------------------------------------------
# Per-token log-probabilities (pure pieces first, then the model call)


def logprobs_from_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target] per position. logits [b, t, vocab], targets [b, t] -> [b, t] fp32.

    Computed as logit[target] − logsumexp(logits): the same number as a log_softmax + gather without
    materialising a second [b, t, vocab] tensor.
    """
    logits = logits.float()
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the next-token distribution per position. logits [b, t, vocab] -> [b, t]."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that count real tokens only (left padding must not shift the prompt). [b, s] -> [b, s]."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


@dataclass
class ResponseForward:
    """A forward pass over prompt + response, restricted to the response columns."""

    logits: torch.Tensor  # [b, t, vocab] logits predicting each response token
    logprobs: torch.Tensor  # [b, t] fp32
    values: torch.Tensor | None  # [b, t] fp32 when a value head was given


def forward_response(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     response_start: int, value_head: torch.nn.Module | None = None,
                     temperature: float = 1.0) -> ResponseForward:
    """One forward pass; log-probs (and values) of the response tokens at columns response_start: , under
    softmax(logits / temperature) (the returned logits are scaled too, so entropies match).

    The logits at column i predict token i + 1, so response token j (column response_start + j) is
    predicted at column response_start + j − 1. `logits_to_keep` skips the LM head on prompt columns.
    The value of state s_j (the prefix before response token j) is read from the same column.
    """
    t = input_ids.shape[1] - response_start
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                logits_to_keep=t + 1, output_hidden_states=value_head is not None, use_cache=False)
    logits = out.logits[:, :-1] / temperature  # [b, t, vocab]
    logprobs = logprobs_from_logits(logits, input_ids[:, response_start:])
    values = None
    if value_head is not None:
        hidden = out.hidden_states[-1][:, response_start - 1 : -1]  # [b, t, d] final (normed) hidden state
        values = value_head(hidden).squeeze(-1).float()  # [b, t]
    return ResponseForward(logits=logits, logprobs=logprobs, values=values)


def token_logprobs(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   response_start: int, temperature: float = 1.0) -> torch.Tensor:
    """log p(token | prefix) for every column from `response_start` on. ids/mask [b, s] -> [b, s − response_start].

    Differentiable (call it under `torch.no_grad()` for old / reference log-probs). Padding columns get a
    number too; multiply by the response mask.
    """
    return forward_response(model, input_ids, attention_mask, response_start, temperature=temperature).logprobs


# ---------------------------------------------------------------------------------------------------
# Sampling + scoring


@torch.no_grad()
def score_rollout(policy: LoadedModel, batch: Rollout, frozen_ref: torch.nn.Module | None = None,
                  value_head: torch.nn.Module | None = None, chunk_size: int = 8) -> Rollout:
    """Fill `logprobs`, `values` (policy pass) and `ref_logprobs` (reference pass) of a rollout, no grad.

    Runs under the same autocast as training (`default_autocast(model, "train")`), so that PPO's
    ratio π/π_old is exactly 1 before the first update and the KL to the reference is exactly 0 while
    the LoRA adapters are still at their (zero) initialisation.
    """
    model = policy.model
    autocast = default_autocast(model, "train")
    ids, mask, start = batch.input_ids, batch.attention_mask, batch.response_start
    device = next(model.parameters()).device
    logprobs, values, ref_logprobs = [], [], []
    with eval_mode(model), autocast_context(model, autocast):
        for lo in range(0, len(ids), chunk_size):
            rows = slice(lo, lo + chunk_size)
            out = forward_response(model, ids[rows].to(device), mask[rows].to(device), start, value_head,
                                   batch.temperature)
            logprobs.append(out.logprobs.cpu())
            if out.values is not None:
                values.append(out.values.cpu())
        with reference_policy(policy, frozen_ref) as ref:
            for lo in range(0, len(ids), chunk_size):
                rows = slice(lo, lo + chunk_size)
                ref_logprobs.append(token_logprobs(ref, ids[rows].to(device), mask[rows].to(device), start,
                                                   batch.temperature).cpu())
    m = batch.response_mask
    batch.logprobs = torch.cat(logprobs) * m
    batch.ref_logprobs = torch.cat(ref_logprobs) * m
    batch.values = torch.cat(values) * m if values else None
    return batch


def rollout(policy: LoadedModel, prompts: list[list[dict]], gen: GenerationConfig,
            frozen_ref: torch.nn.Module | None = None, *, value_head: torch.nn.Module | None = None,
            progress: Callable[[int], None] | None = None) -> Rollout:
    """Sample one reply per chat prompt with `gen` (seeded), then score it: see the module docstring.

    A reply that ended before `gen.max_new_tokens` gets the end-of-turn token appended: stopping is an
    action the policy took, so it is scored, rewarded and trained like any other token. A reply cut at
    `max_new_tokens` has no end-of-turn token.
    """
    if gen.max_new_tokens < 1:
        raise ValueError("a rollout needs max_new_tokens >= 1")
    sampled = generate_ids(policy, prompts, gen, progress)
    eot = end_of_turn_id(policy)
    tokens = [ids + [eot] if len(ids) < gen.max_new_tokens else ids for ids in sampled]
    query = left_pad([prompt_ids(policy, p) for p in prompts], pad_id(policy.tokenizer))
    response = right_pad(tokens, pad_id(policy.tokenizer))
    response_ids, response_mask = response["input_ids"], response["attention_mask"].float()
    empty = torch.zeros_like(response_mask)
    batch = Rollout(
        prompts=list(prompts),
        responses=[policy.tokenizer.decode(ids, skip_special_tokens=True) for ids in sampled],
        query_ids=query["input_ids"], query_mask=query["attention_mask"],
        response_ids=response_ids, response_mask=response_mask, logprobs=empty, ref_logprobs=empty,
        temperature=gen.temperature if gen.do_sample and gen.temperature > 0 else 1.0)
    return score_rollout(policy, batch, frozen_ref, value_head, chunk_size=max(gen.batch_size, 1))


# ---------------------------------------------------------------------------------------------------
# Loop helpers shared by PPO and RLOO


def prompt_batches(n_prompts: int, per_step: int, steps: int, seed: int) -> list[list[int]]:
    """Indices of the prompts of each step: walk a seeded shuffle, reshuffling after each pass."""
    if n_prompts < 1:
        raise ValueError("RL training needs at least one prompt")
    rng = random.Random(seed)
    order: list[int] = []
    batches = []
    for _ in range(steps):
        batch = []
        while len(batch) < per_step:
            if not order:
                order = list(range(n_prompts))
                rng.shuffle(order)
            batch.append(order.pop())
        batches.append(batch)
    return batches


def as_scores(values, n: int) -> torch.Tensor:
    """A reward function's output as a float tensor [n] (lists, numpy arrays and tensors accepted)."""
    scores = torch.as_tensor(values, dtype=torch.float32).detach().cpu().reshape(-1)
    if scores.numel() != n:
        raise ValueError(f"the reward function returned {scores.numel()} scores for {n} responses")
    return scores
