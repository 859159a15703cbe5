"""What the on-policy trainers' unit tests share: two prompts, a small LoRA, a planted reward, a tiny policy."""

import torch

from superalign.models import load
from superalign.rlhf.common import AdapterConfig, make_trainable

PROMPTS = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "say something"}]]
ADAPTER = AdapterConfig(r=4, alpha=8)


def fraction_of_a(prompts, responses):
    """A planted reward: the share of the letter "a" in the reply."""
    return torch.tensor([r.count("a") / max(len(r), 1) for r in responses])


def tiny_policy():
    return make_trainable(load("tiny-llama"), ADAPTER)
