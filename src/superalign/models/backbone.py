"""The transformer inside a loaded model, for readers that put their own head on it (reward models, probes).

One place for three things every such reader needs: the backbone without the LM head, its stack of blocks,
and pooling its hidden states to one vector per row.
"""

from __future__ import annotations

import torch
from torch import nn


def backbone_of(lm) -> nn.Module:
    """The transformer without its LM head (saves the vocabulary projection); an encoder is its own backbone."""
    return lm.model.base_model if lm.kind == "decoder" else lm.model


def blocks(backbone: nn.Module) -> tuple[str, nn.ModuleList]:
    """(qualified name, blocks) of the backbone, from the internals' one architecture map
    (Llama ``layers``, GPT-2 ``h``, BERT ``encoder.layer``)."""
    from superalign.models.internals import block_stack

    owner, attr, stack = block_stack(backbone)
    prefix = next(name for name, module in backbone.named_modules() if module is owner)
    return (f"{prefix}.{attr}" if prefix else attr), stack


def pool_hidden(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """[b, s, d] hidden states -> [b, d]: ``mean`` over real tokens, or the ``last`` real token.

    The last real token is the highest position whose mask is 1, which is right for right padding
    and for left padding alike.
    """
    mask = attention_mask.to(hidden.device)
    if pooling == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)  # [b, s, 1]
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1)
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)  # [b, s]
    last = torch.where(mask.bool(), positions, torch.full_like(positions, -1)).max(dim=1).values  # [b]
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last.clamp(min=0)]
