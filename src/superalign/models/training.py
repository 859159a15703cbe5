"""What every trainer of a language model shares: adapters, results, the step loop, divergence.

Every method (SFT here and in ``finetune``; DPO, PPO, RLOO in the train stage; the model organisms) takes a
trainable :class:`LoadedModel`, its data, and its own config; it trains the model in place and returns a
:class:`TrainResult`. Configs are read by attribute (:class:`AdapterSettings`), so each technique keeps its
own pydantic config, and this module needs none.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from superalign.models.sources import LoadedModel


class AdapterSettings(Protocol):
    """How a model is made trainable (e.g. the train stage's ``AdapterConfig``)."""

    mode: str  # "lora" | "full"
    r: int
    alpha: int
    dropout: float
    target_modules: list[str] | str


# Called during training at evaluation points: (step, policy) -> None (the stage measures gold there).
EvalHook = Callable[[int, LoadedModel], None]


class TrainingDiverged(RuntimeError):
    """A loss, KL or reward became NaN/inf; the model was restored to its last good state."""


@dataclass
class TrainResult:
    """What a policy-optimization run returns (the trained model itself was updated in place)."""

    method: str
    steps: int  # optimizer steps taken
    history: list[dict] = field(default_factory=list)  # one row per step: {"step", "loss", "kl", ...}
    diverged: str | None = None  # the TrainingDiverged message when the run stopped early
    checkpoint: Path | None = None  # last good adapter/weights on disk, when an output dir was given


def make_trainable(lm: LoadedModel, config: AdapterSettings) -> LoadedModel:
    """Return ``lm`` with LoRA adapters (peft) or with all weights trainable, in train mode."""
    model = lm.model
    if config.mode == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                          target_modules=config.target_modules, task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    model.train()
    return LoadedModel(name=lm.name, model=model, tokenizer=lm.tokenizer, kind=lm.kind, path=lm.path)


def trainable_params(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters an optimizer should update; a clear error when there are none."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the policy has no trainable parameters: wrap it with make_trainable(lm, config.adapter)")
    return params


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the trainable parameters: the 'last good state' to restore on divergence."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def restore_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def check_finite(step: int, **values: float) -> None:
    """Raise :class:`TrainingDiverged` naming the first non-finite value (loss, KL, reward...)."""
    for name, value in values.items():
        if not math.isfinite(float(value)):
            raise TrainingDiverged(f"{name} became {value} at step {step}; stopped and restored the last good state "
                                   "(lower the learning rate or raise the KL coefficient)")


def save_checkpoint(lm: LoadedModel, directory: Path) -> Path:
    """Save adapters (LoRA) or full weights plus the tokenizer; returns the directory."""
    from superalign.models.sources import _quiet_progress_bars

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with _quiet_progress_bars():  # a "Writing model shards" bar for a save of a second is noise
        lm.model.save_pretrained(directory)
    lm.tokenizer.save_pretrained(directory)
    return directory


def epoch_schedule(n_batches: int, epochs: int, seed: int) -> list[tuple[int, int]]:
    """(epoch, batch index) per optimizer step: every batch once per epoch, in a seeded shuffled order."""
    schedule = []
    for epoch in range(epochs):
        order = list(range(n_batches))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        schedule.extend((epoch, i) for i in order)
    return schedule


def run_training(method: str, policy: LoadedModel, n_steps: int, step_fn: Callable[[int], dict], *,
                 progress=None, eval_hook: EvalHook | None = None, eval_every: int = 0,
                 out_dir: Path | None = None, modules: list[torch.nn.Module] | None = None,
                 save: Callable[[Path], Path] | None = None) -> TrainResult:
    """The loop every trainer shares around its own ``step_fn(step) -> history row``.

    Before each step the trainable state of ``modules`` (default: the policy) is kept; if the step raises
    :class:`TrainingDiverged`, that state is restored, saved to ``out_dir`` when given, attached to the
    error as ``err.result`` and the error re-raised. ``eval_hook`` runs at step 0, every ``eval_every``
    steps and at the end (never twice for one step).
    """
    from superalign.progress import NullProgress

    modules = modules or [policy.model]
    save = save or (lambda directory: save_checkpoint(policy, directory))
    result = TrainResult(method=method, steps=0)
    advance = (progress or NullProgress()).task(method, n_steps)

    def evaluate(step: int) -> None:
        if eval_hook is not None and (step in (0, n_steps) or (eval_every > 0 and step % eval_every == 0)):
            eval_hook(step, policy)

    evaluate(0)
    for step in range(1, n_steps + 1):
        good = [trainable_state(m) for m in modules]
        try:
            row = step_fn(step)
        except TrainingDiverged as err:
            for module, state in zip(modules, good):
                restore_state(module, state)
            result.diverged = str(err)
            if out_dir is not None:
                result.checkpoint = save(Path(out_dir))
            err.result = result
            raise
        result.history.append({"step": step, **row})
        result.steps = step
        advance(1)
        evaluate(step)
    if out_dir is not None:
        result.checkpoint = save(Path(out_dir))
    return result
