"""The train stage's SFT step: :func:`train_sft` with its :class:`SFTConfig` (quick CPU defaults).

The trainer lives in ``models.finetune``, shared with the model organisms; see its docstring for the method.
"""

from __future__ import annotations

from collections.abc import Sequence

from superalign.models.finetune import DemoBatch, collate_demos, encode_demos, sft_loss  # noqa: F401 - re-exported
from superalign.models.finetune import train_sft as _train_sft
from superalign.records import Demonstration
from superalign.rlhf.config import SFTConfig


def train_sft(policy, demos: Sequence[Demonstration], config: SFTConfig | None = None, **kwargs):
    """:func:`superalign.models.finetune.train_sft` with the train stage's defaults when no config is given."""
    return _train_sft(policy, demos, config or SFTConfig(), **kwargs)


__all__ = ["DemoBatch", "SFTConfig", "collate_demos", "encode_demos", "sft_loss", "train_sft"]
