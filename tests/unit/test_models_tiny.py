"""Tiny in-process models: deterministic init, sizes, and they learn."""

import torch

from superalign.models import load
from superalign.models.tiny import TINY_MODELS


def test_tiny_models_are_deterministic_and_leave_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = load("tiny-llama")
    after = torch.rand(1)
    b = load("tiny-llama")
    assert torch.equal(before, after)  # building the model did not consume the caller's RNG
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)


def test_tiny_sizes_and_kinds():
    sizes = {name: sum(p.numel() for p in load(name).model.parameters()) for name in TINY_MODELS}
    assert 50_000 < sizes["tiny-llama"] < 200_000
    assert 1_000_000 < sizes["tiny-llama-2m"] < 4_000_000
    assert load("tiny-encoder").kind == "encoder"
    assert load("tiny-gpt2").kind == "decoder"


def test_training_steps_lower_the_loss():
    lm = load("tiny-llama")
    model = lm.model
    model.train()
    batch = lm.tokenizer(["the cat sat on the mat", "the dog sat on the log"], return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        loss = model(**batch, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5
