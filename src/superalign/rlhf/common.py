"""What the policy-optimization methods share: the shared training loop (``models.training``, re-exported
here) plus the reference policy and the proxy reward that only RL needs."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator

import torch

from superalign.models import LoadedModel
from superalign.models.training import (  # noqa: F401 - re-exported
    EvalHook,
    TrainingDiverged,
    TrainResult,
    check_finite,
    epoch_schedule,
    make_trainable,
    restore_state,
    run_training,
    save_checkpoint,
    trainable_params,
    trainable_state,
)
from superalign.rlhf.config import AdapterConfig  # noqa: F401 - re-exported

# A proxy reward: (chat prompts, responses) -> one score per response. The learned reward model is one;
# tests pass small functions.
RewardFn = Callable[[list[list[dict]], list[str]], torch.Tensor]


@contextlib.contextmanager
def reference_policy(lm: LoadedModel, frozen_copy: torch.nn.Module | None = None) -> Iterator[torch.nn.Module]:
    """The reference policy π_ref as a module, without a second copy of the weights under LoRA.

    With peft adapters, π_ref is the same model with its adapters disabled; with full fine-tuning the
    caller keeps a frozen copy (see :func:`frozen_reference`) and passes it in.
    """
    if frozen_copy is not None:
        yield frozen_copy
    elif hasattr(lm.model, "disable_adapter"):
        with lm.model.disable_adapter():
            yield lm.model
    else:
        raise ValueError("full fine-tuning needs a frozen reference copy: pass frozen_reference(lm)")


def frozen_reference(lm: LoadedModel, config: AdapterConfig) -> torch.nn.Module | None:
    """A frozen copy of the starting weights for full fine-tuning; None under LoRA (not needed)."""
    if config.mode == "lora":
        return None
    ref = copy.deepcopy(lm.model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref
