"""Tiny random-init models built in-process: deterministic, download-free, for tests and smoke runs."""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import (
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
)

from superalign.models.tokenizer import VOCAB_SIZE

TINY_SEED = 0
TINY_VERSION = 1  # bump when a tiny model's architecture or initialization changes (cache keys use it)
_IDS = dict(bos_token_id=259, eos_token_id=257, pad_token_id=258)


def _llama(hidden: int, layers: int, heads: int, intermediate: int) -> PreTrainedModel:
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        **_IDS,
    )
    return LlamaForCausalLM(config)


def _gpt2() -> PreTrainedModel:
    config = GPT2Config(vocab_size=VOCAB_SIZE, n_positions=1024, n_embd=64, n_layer=2, n_head=4, **_IDS)
    return GPT2LMHeadModel(config)


def _encoder() -> PreTrainedModel:
    config = BertConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=512,
        pad_token_id=_IDS["pad_token_id"],
    )
    return BertModel(config, add_pooling_layer=False)


# name -> (builder, kind, description)
TINY_MODELS: dict[str, tuple[Callable[[], PreTrainedModel], str, str]] = {
    "tiny-llama": (lambda: _llama(64, 2, 4, 128), "decoder", "random Llama, d=64, 2 layers (~100k params)"),
    "tiny-llama-2m": (lambda: _llama(256, 3, 8, 512), "decoder", "random Llama, d=256, 3 layers (~2M params)"),
    "tiny-gpt2": (_gpt2, "decoder", "random GPT-2, d=64, 2 layers"),
    "tiny-encoder": (_encoder, "encoder", "random BERT encoder, d=64, 2 layers"),
}


def build_tiny_model(name: str, seed: int = TINY_SEED) -> PreTrainedModel:
    """Build a tiny model in eval mode; the init depends only on `seed` (the global RNG is untouched)."""
    builder = TINY_MODELS[name][0]
    # fork_rng: seeding here must not disturb the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = builder()
    model.eval()
    return model
