"""Supervised fine-tuning on demonstrations: maximize log p(response | prompt), response tokens only.

Shared by the train stage's SFT step and the model organisms (``organisms/``), which import it from here.

The demonstrations are responses to imitate: best-of-n samples selected by the reward model (the
"rejection sampling" fine-tuning of Touvron et al. 2023 and the SFT step of Ouyang et al. 2022 §3.5) or
responses written by people in the studio. ``train_sft`` reads top to bottom: tokenize each demonstration
once (chat prompt with the generation prompt, then response + end-of-turn), group similar lengths into
batches, then per step one forward (the LM head on the response positions only), the loss of :func:`sft_loss`,
backward, clipping, AdamW, with the same divergence handling as every trainer (restore the state from before a
non-finite step, save it, re-raise).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F

from superalign.models.generation import (autocast_context, default_autocast, end_of_turn_id, prompt_ids,
                                          response_logprobs, right_pad_completions)
from superalign.models.sources import LoadedModel
from superalign.models.training import (EvalHook, TrainResult, check_finite, epoch_schedule, run_training,
                                        trainable_params)
from superalign.progress import NullProgress, Progress
from superalign.records import Demonstration


class SFTSettings(Protocol):
    """What :func:`train_sft` reads from its config (e.g. the train stage's ``SFTConfig``)."""

    lr: float
    epochs: int
    batch_size: int
    max_length: int
    seed: int
    max_grad_norm: float | None


def sft_loss(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the response tokens. logits [b, s, vocab], ids/mask [b, s] -> scalar.

    Prompt and padding tokens (mask 0) count for nothing; every response token in the batch weighs the
    same (a token mean, not a mean of per-sequence means).
    """
    # Ouyang et al. 2022 §3.5 (SFT): the language-modeling loss restricted to the demonstration:
    #   L = −(1/N) Σ_{i,t} m_{i,t} log p(x_{i,t} | x_{i,<t}),   N = Σ m
    nll = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), input_ids[:, 1:].flatten(),
                          reduction="none")  # [b*(s-1)]: position t predicts token t+1
    mask = completion_mask[:, 1:].flatten().to(nll.dtype)
    return (nll * mask).sum() / mask.sum().clamp(min=1.0)


@dataclass
class DemoBatch:
    """Prompt + response (+ end-of-turn) token ids, right-padded. Tensors [b, s]."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor


def encode_demos(lm: LoadedModel, demos: Sequence[Demonstration], max_length: int) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, response ids + end-of-turn) per demonstration; a prompt that fills max_length is skipped."""
    eot = end_of_turn_id(lm)
    out = []
    for demo in demos:
        prompt = prompt_ids(lm, demo.prompt)
        room = max_length - len(prompt)
        if room >= 1:
            out.append((prompt, (lm.tokenizer(demo.response, add_special_tokens=False)["input_ids"] + [eot])[:room]))
    return out


def collate_demos(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> DemoBatch:
    batch = right_pad_completions(list(rows), pad_id)
    return DemoBatch(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                     completion_mask=batch.completion_mask)


def _batches(lm: LoadedModel, encoded: list[tuple[list[int], list[int]]], batch_size: int) -> list[DemoBatch]:
    """Batches of similar length (sorted by length, then cut): less padding."""
    tok = lm.tokenizer
    pad = int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i][0]) + len(encoded[i][1]), i))
    return [collate_demos([encoded[i] for i in order[s : s + batch_size]], pad)
            for s in range(0, len(order), batch_size)]


def _sft_step(lm: LoadedModel, batch: DemoBatch, optimizer: torch.optim.Optimizer,
              params: list[torch.nn.Parameter], config: SFTSettings, autocast: bool, step: int) -> dict:
    """One optimizer step; raises TrainingDiverged before any non-finite update lands."""
    model = lm.model
    device = next(model.parameters()).device
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    ids, cmask = batch.input_ids.to(device), batch.completion_mask.to(device)
    with autocast_context(model, autocast):  # the LM head runs on the response positions only
        logprobs = response_logprobs(model, ids, batch.attention_mask.to(device), cmask)  # [b]
    loss = -logprobs.sum() / cmask[:, 1:].sum().clamp(min=1)  # = sft_loss on the full logits
    check_finite(step, loss=float(loss.detach()))
    loss.backward()
    if config.max_grad_norm is not None:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm))
    else:
        grad_norm = float(torch.stack([p.grad.norm() for p in params if p.grad is not None]).norm())
    check_finite(step, grad_norm=grad_norm)
    optimizer.step()
    check_finite(step, weights=float(torch.stack([p.detach().abs().max() for p in params]).max()))
    return {"step": step, "loss": float(loss.detach()), "grad_norm": grad_norm,
            "tokens": int(batch.attention_mask.sum()), "response_tokens": int(cmask[:, 1:].sum()),
            "seconds": time.perf_counter() - start}


def train_sft(policy: LoadedModel, demos: Sequence[Demonstration], config: SFTSettings, *,
              progress: Progress | None = None, eval_hook: EvalHook | None = None, eval_every: int = 0,
              out_dir: Path | None = None) -> TrainResult:
    """Fine-tune ``policy`` (already made trainable) on demonstrations, in place.

    History rows: step, epoch, loss (mean response-token NLL of the batch before the update), grad_norm,
    tokens, response_tokens, seconds. ``eval_hook(step, policy)`` runs at step 0, every ``eval_every``
    steps (when > 0) and after the last step. The adapters (or weights) are saved to ``out_dir`` at the
    end, or on divergence after restoring the state from before the bad step.
    """
    progress = progress or NullProgress()
    torch.manual_seed(config.seed)
    model = policy.model
    params = trainable_params(model)
    encoded = encode_demos(policy, demos, config.max_length)
    if not encoded:
        raise ValueError(f"no demonstrations to train on: {len(demos)} given"
                         + (f", all with prompts longer than max_length={config.max_length}" if demos else ""))
    batches = _batches(policy, encoded, config.batch_size)
    autocast = default_autocast(model, "train")
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    schedule = epoch_schedule(len(batches), config.epochs, config.seed)

    def step_fn(step: int) -> dict:
        epoch, i = schedule[step - 1]
        return {**_sft_step(policy, batches[i], optimizer, params, config, autocast, step), "epoch": epoch}

    return run_training("sft", policy, len(schedule), step_fn, progress=progress, eval_hook=eval_hook,
                        eval_every=eval_every, out_dir=out_dir)


__all__ = ["DemoBatch", "SFTSettings", "collate_demos", "encode_demos", "sft_loss", "train_sft"]
