"""Direct Preference Optimization (Rafailov et al. 2023): train the policy on preference records directly.

``train_dpo`` reads top to bottom:

1. tokenize every pair once: the chat prompt (with the generation prompt), then chosen + end-of-turn and
   rejected + end-of-turn, exactly where generation puts the boundary;
2. group pairs of similar length into batches (less padding); the grouping is fixed for the run and only
   the order of the batches is shuffled each epoch;
3. reference log-probs log π_ref(y|x) for the whole dataset, once, before training, under ``no_grad``
   (π_ref is the policy with its LoRA adapters disabled, or a frozen copy that is dropped afterwards);
4. each optimizer step: forwards over `micro_batch_size` pairs at a time (their chosen and rejected rows
   together), :func:`dpo_loss` on each part weighted by its share and backward (gradients accumulate), then
   gradient clipping, AdamW; a non-finite loss, gradient or weight stops the run with
   :class:`~superalign.rlhf.common.TrainingDiverged` after restoring the state from before that step.

Speed on CPU: bf16 autocast for the policy and the reference pass alike when
``default_autocast(model, "train")`` says so (the same arithmetic on both sides keeps the log-ratios at
exactly 0 before the first update; see benchmarks/dpo.py for the measured effect), the LM head projects
only the positions that predict a response token (no logits for prompt or padding), no gradient
checkpointing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from superalign.models import LoadedModel
from superalign.models.generation import (
    autocast_context,
    default_autocast,
    end_of_turn_id,
    eval_mode,
    pad_id,
    prompt_ids,
    response_logprobs,
    right_pad_completions,
)
from superalign.progress import NullProgress, Progress
from superalign.records import Preference
from superalign.rlhf.common import (
    AdapterConfig,
    EvalHook,
    TrainResult,
    check_finite,
    epoch_schedule,
    frozen_reference,
    reference_policy,
    run_training,
    trainable_params,
)
from superalign.rlhf.feedback import select_pairs
from superalign.rlhf.config import DPOConfig  # noqa: F401 - re-exported


# ---------------------------------------------------------------------------------------------------
# The loss


@dataclass
class DPOLoss:
    """The batch loss and its diagnostics. Rewards are the implicit rewards β log π/π_ref, per pair [b]."""

    loss: torch.Tensor  # scalar, differentiable
    chosen_reward: torch.Tensor  # [b], detached
    rejected_reward: torch.Tensor  # [b], detached
    accuracy: float  # fraction of pairs with chosen_reward > rejected_reward


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float, label_smoothing: float = 0.0) -> DPOLoss:
    """DPO loss from summed response log-probs, each [b] (nats per sequence); mean over the batch.

    With label_smoothing ε > 0 this is conservative DPO (cDPO), which treats each label as flipped with
    probability ε. When the policy equals the reference the loss is log 2 whatever β and ε are.
    """
    # Rafailov et al. 2023, eq. 7:
    #   L_DPO = −E[ log σ( β log π(y_w|x)/π_ref(y_w|x) − β log π(y_l|x)/π_ref(y_l|x) ) ]
    # The two terms are the implicit rewards r(x, y) = β log π(y|x)/π_ref(y|x) (eq. 5, up to β log Z(x)).
    chosen_reward = beta * (policy_chosen - ref_chosen)
    rejected_reward = beta * (policy_rejected - ref_rejected)
    margin = chosen_reward - rejected_reward
    # cDPO (Mitchell 2023, "A note on DPO with noisy preferences"): the expected loss under label noise ε,
    #   L = −(1 − ε) log σ(margin) − ε log σ(−margin)
    losses = -(1.0 - label_smoothing) * F.logsigmoid(margin) - label_smoothing * F.logsigmoid(-margin)
    return DPOLoss(loss=losses.mean(), chosen_reward=chosen_reward.detach(),
                   rejected_reward=rejected_reward.detach(),
                   accuracy=float((margin > 0).float().mean()) if margin.numel() else 0.0)


# ---------------------------------------------------------------------------------------------------
# Data: tokenized pairs and batches


@dataclass(frozen=True)
class EncodedPair:
    """Token ids of one preference pair; both responses end with the end-of-turn token."""

    prompt: list[int]
    chosen: list[int]
    rejected: list[int]

    @property
    def length(self) -> int:  # the longer row of the pair: what sets the padding
        return len(self.prompt) + max(len(self.chosen), len(self.rejected))


@dataclass
class EncodedPairs:
    pairs: list[EncodedPair]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (ties, identical, too long)


def encode_pairs(lm: LoadedModel, prefs: Sequence[Preference], max_length: int) -> EncodedPairs:
    """Tokenize preference pairs; skip ties, identical responses and prompts that fill max_length.

    Responses longer than the room left after the prompt are cut at the end (the prompt is kept whole).
    """
    eot = end_of_turn_id(lm)
    pairs: list[EncodedPair] = []
    skipped = {"tie": 0, "identical": 0, "prompt_too_long": 0}
    for pref in prefs:
        if pref.tie:
            skipped["tie"] += 1  # no preference, no signal
            continue
        if pref.chosen == pref.rejected:
            skipped["identical"] += 1  # the log-ratios cancel exactly: zero gradient, wasted compute
            continue
        prompt = prompt_ids(lm, pref.prompt)
        room = max_length - len(prompt)
        if room < 1:
            skipped["prompt_too_long"] += 1
            continue
        encode = lambda text: (lm.tokenizer(text, add_special_tokens=False)["input_ids"] + [eot])[:room]  # noqa: E731
        pairs.append(EncodedPair(prompt, encode(pref.chosen), encode(pref.rejected)))
    return EncodedPairs(pairs, {k: v for k, v in skipped.items() if v})


@dataclass
class PairBatch:
    """Chosen rows then rejected rows, right-padded. Tensors [2b, s]; completion_mask marks response tokens."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor

    @property
    def n_pairs(self) -> int:
        return self.input_ids.shape[0] // 2

    @property
    def n_tokens(self) -> int:  # real (non-padding) tokens the forward processes
        return int(self.attention_mask.sum())

    def pairs(self, index: list[int]) -> "PairBatch":
        """The pairs `index` (chosen rows, then their rejected rows), trimmed to their own longest row."""
        rows = _rows(index, self.n_pairs)
        width = int(self.attention_mask[rows].sum(-1).max())  # right-padded: columns past it are padding
        return PairBatch(input_ids=self.input_ids[rows, :width], attention_mask=self.attention_mask[rows, :width],
                         completion_mask=self.completion_mask[rows, :width])


def collate_pairs(pairs: Sequence[EncodedPair], pad_id: int) -> PairBatch:
    """One tensor batch for a single forward: rows [0, b) are prompt+chosen, rows [b, 2b) prompt+rejected."""
    rows = [(p.prompt, p.chosen) for p in pairs] + [(p.prompt, p.rejected) for p in pairs]
    batch = right_pad_completions(rows, pad_id)
    return PairBatch(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                     completion_mask=batch.completion_mask)


def length_buckets(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (sorted, then cut), to cut padding."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


# ---------------------------------------------------------------------------------------------------
# Log-probs of the response tokens


def _batch_logprobs(model: torch.nn.Module, batch: PairBatch) -> torch.Tensor:
    device = next(model.parameters()).device
    return response_logprobs(model, batch.input_ids.to(device), batch.attention_mask.to(device),
                             batch.completion_mask.to(device))


def micro_batches(n_pairs: int, size: int) -> list[list[int]]:
    """The pair indices of each forward pass within a batch (the reference pass and training use the same)."""
    return [list(range(first, min(first + size, n_pairs))) for first in range(0, n_pairs, size)]


def _rows(index: list[int], n_pairs: int) -> torch.Tensor:
    """Row numbers of pairs `index` in a [2b] batch: their chosen rows, then their rejected rows."""
    return torch.tensor(index + [n_pairs + i for i in index])


@torch.no_grad()
def reference_logprobs(lm: LoadedModel, batches: Sequence[PairBatch], autocast: bool,
                       advance: Callable[[int], None] | None = None,
                       frozen: torch.nn.Module | None = None, micro_batch_size: int | None = None) -> list[torch.Tensor]:
    """log π_ref of every row of every batch, [2b] each, computed once before training.

    π_ref is the policy with its adapters disabled (LoRA), or for full fine-tuning ``frozen`` (a copy of
    the starting weights kept by a caller that trains between calls) or else a frozen copy of the current
    weights, freed when this returns. The same batches and autocast as training: before the first update
    the log-ratios are then exactly zero (the same micro-batches too: bf16 results depend on the batch shape).
    """
    if frozen is None and not hasattr(lm.model, "disable_adapter"):
        frozen = frozen_reference(lm, AdapterConfig(mode="full"))
    out = []
    with reference_policy(lm, frozen) as ref, eval_mode(ref), autocast_context(ref, autocast):
        for batch in batches:
            b = batch.n_pairs
            logps = torch.zeros(2 * b)
            for index in micro_batches(b, micro_batch_size or b):
                logps[_rows(index, b)] = _batch_logprobs(ref, batch.pairs(index)).float().cpu()
            out.append(logps)
            if advance is not None:
                advance(1)
    return out


# ---------------------------------------------------------------------------------------------------
# Training


def _grad_norm(params: list[torch.nn.Parameter], max_norm: float | None) -> float:
    """Clip to max_norm (when given) and return the total gradient norm before clipping."""
    if max_norm is not None:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    grads = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.stack(grads).norm()) if grads else 0.0


def _max_abs(params: list[torch.nn.Parameter]) -> float:
    return float(torch.stack([p.detach().abs().max() for p in params]).max())


def dpo_step(lm: LoadedModel, batch: PairBatch, ref: torch.Tensor, optimizer: torch.optim.Optimizer,
             params: list[torch.nn.Parameter], config: DPOConfig, autocast: bool, step: int) -> dict:
    """One optimizer step on one batch; raises TrainingDiverged before any non-finite update lands.

    The batch's pairs go through the model `config.micro_batch_size` at a time, each part's loss weighted
    by its share of the batch and its gradient accumulated: the same step as one forward over the whole
    batch, with the activations of one part in memory (8 pairs of ~220 tokens at once peaked at 6.7 GB).
    """
    model = lm.model
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    b = batch.n_pairs
    ref = ref.cpu()
    logps = torch.zeros(2 * b)  # chosen rows, then rejected rows (detached, for the step's statistics)
    for index in micro_batches(b, config.micro_batch_size):
        m, rows = len(index), _rows(index, b)
        # Dropout off (as TRL's disable_dropout=True): with it the policy would differ from π_ref at step 0.
        with eval_mode(model), autocast_context(model, autocast):
            part_logps = _batch_logprobs(model, batch.pairs(index)).cpu()  # [2m]
        loss = dpo_loss(part_logps[:m], part_logps[m:], ref[rows[:m]], ref[rows[m:]], config.beta,
                        config.label_smoothing).loss
        check_finite(step, loss=float(loss.detach()))
        (loss * (m / b)).backward()
        logps[rows] = part_logps.detach()
    out = dpo_loss(logps[:b], logps[b:], ref[:b], ref[b:], config.beta, config.label_smoothing)
    grad_norm = _grad_norm(params, config.max_grad_norm)
    check_finite(step, grad_norm=grad_norm)
    optimizer.step()
    check_finite(step, weights=_max_abs(params))
    margin = out.chosen_reward - out.rejected_reward
    return {"step": step, "loss": float(out.loss), "margin": float(margin.mean()),
            "chosen_reward": float(out.chosen_reward.mean()), "rejected_reward": float(out.rejected_reward.mean()),
            "accuracy": out.accuracy, "logratio": float((logps - ref).mean()), "grad_norm": grad_norm,
            "tokens": batch.n_tokens, "pairs": b, "seconds": time.perf_counter() - start}


def train_dpo(policy: LoadedModel, prefs: Sequence[Preference], config: DPOConfig | None = None, *,
              progress: Progress | None = None, eval_hook: EvalHook | None = None, eval_every: int = 0,
              out_dir: Path | None = None) -> TrainResult:
    """Train ``policy`` (already made trainable) with DPO on preference pairs, in place.

    History rows: step, epoch, loss, margin (mean chosen − rejected implicit reward), chosen_reward,
    rejected_reward, accuracy, logratio (mean log π/π_ref over the batch's responses, nats per sequence:
    an off-policy quantity, not a KL — sample from the policy for that), grad_norm, tokens, pairs, seconds.
    ``eval_hook(step, policy)`` runs at step 0, every ``eval_every`` steps (when > 0) and after the last
    step. The adapters (or weights) are saved to ``out_dir`` at the end, or on divergence after restoring
    the state from before the bad step.
    """
    config = config or DPOConfig()
    progress = progress or NullProgress()
    torch.manual_seed(config.seed)
    model = policy.model
    params = trainable_params(model)
    prefs = select_pairs(prefs, config.pairs)
    encoded = encode_pairs(policy, prefs, config.max_length)
    if not encoded.pairs:
        raise ValueError(f"no preference pairs to train on: {len(prefs)} given, skipped {encoded.skipped or 'none'}")
    buckets = length_buckets([p.length for p in encoded.pairs], config.batch_size)
    batches = [collate_pairs([encoded.pairs[i] for i in bucket], pad_id(policy.tokenizer)) for bucket in buckets]
    autocast = default_autocast(model, "train")
    ref = reference_logprobs(policy, batches, autocast, progress.task("dpo: reference log-probs", len(batches)),
                             micro_batch_size=config.micro_batch_size)

    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    schedule = epoch_schedule(len(batches), config.epochs, config.seed)

    def step_fn(step: int) -> dict:
        epoch, i = schedule[step - 1]
        return {**dpo_step(policy, batches[i], ref[i], optimizer, params, config, autocast, step), "epoch": epoch}

    return run_training("dpo", policy, len(schedule), step_fn, progress=progress, eval_hook=eval_hook,
                        eval_every=eval_every, out_dir=out_dir)


__all__ = [
    "DPOConfig",
    "DPOLoss",
    "EncodedPair",
    "PairBatch",
    "collate_pairs",
    "dpo_loss",
    "dpo_step",
    "encode_pairs",
    "length_buckets",
    "reference_logprobs",
    "response_logprobs",
    "train_dpo",
]
