"""Online DPO: DPO on pairs that the reward model picks among the policy's own fresh samples.

Guo et al. 2024 ("Direct Language Model Alignment from Online AI Feedback") and Xu et al. 2023 (iterative
DPO): offline DPO learns from samples of the starting policy only; here every round samples the current
policy, so the pairs follow it as it moves, and the reward model (the proxy) labels them — an online
method with the same inputs and outputs as RLOO and PPO. With ``judge="labeler"`` the (simulated) labeler
compares each round's replies afresh instead: iterated online RLHF (Bai et al. 2022 §4.5), which spends
k(k−1)/2 new comparisons per prompt per round and needs no reward model to be right off its data.

One round (`train_online_dpo`, one row of history), top to bottom:

1. sample `k` replies to each of `prompts_per_round` prompts from the current policy (seeded per round);
2. the reward model scores them; each prompt's best- against worst-scored reply is one preference pair
   (prompts whose replies are identical give none), the pair DPO learned most from offline (README) —
   or a `pick` function (the stage's labeler judge) chooses the pairs;
3. `epochs` passes of DPO (`dpo.dpo_step`) over those pairs in batches of `batch_size`, against the fixed
   reference π_ref (the starting policy: LoRA adapters disabled), its log-probs computed once per round.
   One pass is the default: three passes over a round's ~18 pairs fit them hard and lowered held-out gold
   (README, stage "train"), where one pass per round raised it.

One AdamW optimizer lives through all rounds. A non-finite loss, gradient or weight stops the run with
:class:`~superalign.rlhf.common.TrainingDiverged` after restoring the state from before that round.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from superalign.models import GenerationConfig, LoadedModel, generate_ids
from superalign.models.generation import default_autocast, pad_id
from superalign.progress import Progress
from superalign.records import Preference
from superalign.rlhf.common import (
    EvalHook,
    RewardFn,
    TrainResult,
    check_finite,
    frozen_reference,
    run_training,
    trainable_params,
)
from superalign.rlhf.dpo import collate_pairs, dpo_step, encode_pairs, length_buckets, reference_logprobs
from superalign.rlhf.rollout import as_scores, prompt_batches
from superalign.rlhf.config import OnlineDPOConfig  # noqa: F401 - re-exported


# (indices into the prompt list, k replies per prompt) -> preference pairs: who labels a round if not the RM.
Pick = Callable[[list[int], list[list[str]]], list[Preference]]


def reward_model_pairs(prompts: list[list[dict]], replies: list[list[str]], scores: list[np.ndarray],
                       ids: list[str] | None = None) -> list[Preference]:
    """One pair per prompt: its highest- against its lowest-scored reply (none when those are the same text).

    Ties in score keep the first reply (argmax/argmin), as best-of-n does.
    """
    pairs = []
    for i, (prompt, rs, s) in enumerate(zip(prompts, replies, scores)):
        best, worst = rs[int(np.argmax(s))], rs[int(np.argmin(s))]
        if best != worst:
            pairs.append(Preference(task_id=ids[i] if ids else f"prompt-{i}", prompt=list(prompt), chosen=best,
                                    rejected=worst, labeler="reward_model",
                                    meta={"margin": float(np.max(s) - np.min(s))}))
    return pairs


def train_online_dpo(policy: LoadedModel, prompts: list[list[dict]], reward_fn: RewardFn, config: OnlineDPOConfig,
                     *, pick: Pick | None = None, progress: Progress | None = None, eval_hook: EvalHook | None = None,
                     eval_every: int = 0, out_dir: Path | None = None) -> TrainResult:
    """Optimize `policy` (already trainable, trained in place) against `reward_fn` with online DPO.

    `pick` (when given) chooses each round's pairs instead of the reward model, which then only reports
    the proxy score. The caller builds it from ``config.judge`` (the stage: a labeler over its tasks).

    `history` has one row per round: step, pairs, proxy (mean reward-model score of the round's samples),
    proxy_margin (mean best − worst score), loss, margin, accuracy (DPO's, means over the round's steps),
    dpo_steps (so far, all rounds), response_tokens.
    """
    if config.judge == "labeler" and pick is None:
        raise ValueError("online DPO with judge='labeler' needs a pick function that asks the labeler")
    torch.manual_seed(config.seed)
    frozen = frozen_reference(policy, config.adapter)  # π_ref stays the start across rounds (None under LoRA)
    params = trainable_params(policy.model)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    dpo_config = config.dpo()
    autocast = default_autocast(policy.model, "train")
    batches = prompt_batches(len(prompts), config.prompts_per_round, config.rounds, config.seed)
    dpo_steps = 0

    def step_fn(step: int) -> dict:
        nonlocal dpo_steps
        round_prompts = [prompts[i] for i in batches[step - 1]]
        group = [p for p in round_prompts for _ in range(config.k)]  # rows [p*k, (p+1)*k) belong to prompt p
        gen = GenerationConfig(max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                               seed=config.seed + 7919 * step, batch_size=config.sample_batch_size)
        ids = generate_ids(policy, group, gen)
        flat = [policy.tokenizer.decode(x, skip_special_tokens=True) for x in ids]
        scores = as_scores(reward_fn(group, flat), len(group)).view(-1, config.k).numpy()
        check_finite(step, reward=float(scores.mean()))
        replies = [flat[i * config.k:(i + 1) * config.k] for i in range(len(round_prompts))]
        pairs = pick(batches[step - 1], replies) if pick else reward_model_pairs(round_prompts, replies, list(scores))
        encoded = encode_pairs(policy, pairs, config.max_length).pairs
        if not encoded:  # every prompt's replies were identical: nothing to learn this round
            return {"pairs": 0, "proxy": float(scores.mean()), "proxy_margin": 0.0, "dpo_steps": dpo_steps}
        buckets = length_buckets([p.length for p in encoded], config.batch_size)
        data = [collate_pairs([encoded[i] for i in b], pad_id(policy.tokenizer)) for b in buckets]
        ref = reference_logprobs(policy, data, autocast, frozen=frozen, micro_batch_size=dpo_config.micro_batch_size)
        rows = []
        for _ in range(config.epochs):
            for i in torch.randperm(len(data), generator=torch.Generator().manual_seed(config.seed + step)).tolist():
                dpo_steps += 1
                rows.append(dpo_step(policy, data[i], ref[i], optimizer, params, dpo_config, autocast, step))
        return {"pairs": len(encoded), "proxy": float(scores.mean()),
                "proxy_margin": float((scores.max(1) - scores.min(1)).mean()),
                "loss": float(np.mean([r["loss"] for r in rows])), "margin": float(np.mean([r["margin"] for r in rows])),
                "accuracy": float(np.mean([r["accuracy"] for r in rows])), "dpo_steps": dpo_steps,
                "response_tokens": sum(len(x) for x in ids)}

    return run_training("online_dpo", policy, config.rounds, step_fn, progress=progress, eval_hook=eval_hook,
                        eval_every=eval_every, out_dir=out_dir)
