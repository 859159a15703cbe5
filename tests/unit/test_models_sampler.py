"""The fast sampler: the same greedy output as HF generate, seeded draws, LoRA updates reaching it, and the
precision following the CPU's capability."""

import pytest
import torch
from torch import nn

from superalign.models import GenerationConfig, generate_ids, load, precision, sampler
from superalign.models.generation import (
    _draw,
    _filter_top_p,
    default_autocast,
    left_pad,
    pad_id,
    prompt_ids,
    stop_token_ids,
)
from superalign.rlhf.common import AdapterConfig, make_trainable

PROMPTS = [[{"role": "user", "content": text}] for text in
           ("hi", "say something longer than that", "what is 2+2?", "name a colour", "x" * 30)]


def hf_greedy(lm, prompts, n: int) -> list[list[int]]:
    """HF `generate` on the same left-padded batch, cut at the first stop token (as ours returns)."""
    batch = left_pad([prompt_ids(lm, p) for p in prompts], pad_id(lm.tokenizer))
    stops = stop_token_ids(lm)
    with torch.no_grad():
        out = lm.model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], do_sample=False,
                                max_new_tokens=n, eos_token_id=stops, pad_token_id=pad_id(lm.tokenizer))
    rows = out[:, batch["input_ids"].shape[1]:].tolist()
    return [next((r[:j] for j, t in enumerate(r) if t in stops), r) for r in rows]


def greedy_config(n: int, **kw) -> GenerationConfig:
    return GenerationConfig(max_new_tokens=n, do_sample=False, temperature=0.0, batch_size=len(PROMPTS), **kw)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-llama-2m"])
def test_greedy_equals_hf_generate(name):
    lm = load(name)
    assert sampler.packed_model(lm.model, torch.float32) is not None  # the fast path is the one compared
    assert generate_ids(lm, PROMPTS, greedy_config(24)) == hf_greedy(lm, PROMPTS, 24)


def test_unsupported_architectures_fall_back_to_hf():
    lm = load("tiny-gpt2")
    assert sampler.packed_model(lm.model, torch.float32) is None
    assert generate_ids(lm, PROMPTS, greedy_config(8)) == hf_greedy(lm, PROMPTS, 8)


def test_lora_updates_reach_the_sampler():
    policy = make_trainable(load("tiny-llama"), AdapterConfig(r=4, alpha=8))
    policy.model.eval()
    config = greedy_config(16)
    before = generate_ids(policy, PROMPTS, config)  # LoRA B starts at zero: the base model's output
    assert before == hf_greedy(load("tiny-llama"), PROMPTS, 16)
    with torch.no_grad():  # an in-place update, as an optimizer step makes
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.5)
    after = generate_ids(policy, PROMPTS, config)
    assert after != before and after == hf_greedy(policy, PROMPTS, 16)
    with policy.model.disable_adapter():  # the reference policy: adapters off, the packed copy follows
        assert generate_ids(policy, PROMPTS, config) == before


def test_sampling_reproducible_and_batch_independent():
    lm = load("tiny-llama-2m")
    config = GenerationConfig(max_new_tokens=12, seed=5, temperature=0.8, top_p=0.9, batch_size=5)
    a = generate_ids(lm, PROMPTS, config)
    assert a == generate_ids(lm, PROMPTS, config)
    assert a == generate_ids(lm, PROMPTS, GenerationConfig(**{**config.__dict__, "batch_size": 2}))
    assert a != generate_ids(lm, PROMPTS, GenerationConfig(**{**config.__dict__, "seed": 6}))


def test_a_repeated_prompt_is_prefilled_once(monkeypatch):
    """k samples of one prompt share its prefill; each row still samples from its own seed, as if alone."""
    lm = load("tiny-llama-2m")
    prompts = [p for p in PROMPTS for _ in range(3)]
    config = GenerationConfig(max_new_tokens=12, seed=5, temperature=0.8, batch_size=len(prompts))
    shapes, forward = [], sampler.forward
    monkeypatch.setattr(sampler, "forward", lambda pm, ids, *a: shapes.append(tuple(ids.shape)) or forward(pm, ids, *a))
    together = generate_ids(lm, prompts, config)
    assert shapes[0][0] == len(PROMPTS) and shapes[1] == (len(prompts), 1)  # the prefill ran each prompt once
    assert together == generate_ids(lm, prompts, GenerationConfig(**{**config.__dict__, "batch_size": 1}))
    assert together[0] != together[1]  # the copies drew their own tokens


def test_draw_follows_the_distribution():
    probs = torch.tensor([[0.5, 0.0, 0.3, 0.2]]).repeat(4000, 1)
    gens = [torch.Generator().manual_seed(i) for i in range(4000)]
    counts = torch.bincount(_draw(probs, gens), minlength=4).float() / 4000
    assert counts[1] == 0  # a token of probability 0 is never drawn
    assert torch.allclose(counts, probs[0], atol=0.03)


def test_top_p_matches_a_full_sort(monkeypatch):
    """The candidate shortcut keeps exactly the nucleus a full sort keeps, also when it is wider."""
    torch.manual_seed(0)
    flat = torch.softmax(torch.randn(3, 1000) * 0.1, -1)  # nearly uniform: nuclei of hundreds of tokens
    peaked = torch.softmax(torch.randn(3, 1000) * 8, -1)
    probs = torch.cat([flat, peaked])

    def full_sort(p, top_p):
        sorted_p, idx = p.sort(-1, descending=True)
        drop = (sorted_p.cumsum(-1) - sorted_p) >= top_p
        return p.masked_fill(drop.scatter(-1, idx, drop), 0.0)

    monkeypatch.setattr("superalign.models.generation.NUCLEUS_CANDIDATES", 16)
    for top_p in (0.5, 0.9, 0.99):
        assert torch.equal(_filter_top_p(probs, top_p) > 0, full_sort(probs, top_p) > 0)


class Big(nn.Module):
    """12M parameters: above the size where bf16 pays off."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(4000, 3000))


@pytest.mark.parametrize("features, expected", [
    ({"isa": "AVX2", "avx512_bf16": False, "amx": False, "threads": 2}, False),
    ({"isa": "AVX512", "avx512_bf16": False, "amx": False, "threads": 2}, False),
    ({"isa": "AVX512", "avx512_bf16": True, "amx": False, "threads": 2}, True),
    ({"isa": "AVX512", "avx512_bf16": False, "amx": True, "threads": 2}, True),
])
def test_precision_follows_the_cpu(monkeypatch, features, expected):
    monkeypatch.delenv(precision.BF16_ENV, raising=False)
    monkeypatch.setattr(precision, "cpu_features", lambda: features)
    assert precision.fast_bf16("cpu") is expected
    assert default_autocast(Big(), "generate") is expected and default_autocast(Big(), "train") is expected
    assert default_autocast(Big(), "score") is False  # scoring stays fp32 everywhere
    assert ("bf16 native: yes" in precision.describe()) is expected


def test_precision_can_be_forced(monkeypatch):
    monkeypatch.setattr(precision, "cpu_features", lambda: {"isa": "AVX2", "avx512_bf16": False, "amx": False,
                                                            "threads": 2})
    monkeypatch.setenv(precision.BF16_ENV, "1")
    assert default_autocast(Big(), "generate") is True
    monkeypatch.setenv(precision.BF16_ENV, "0")
    assert default_autocast(Big(), "generate") is False


def test_bf16_sampling_runs_close_to_fp32():
    """bf16 (forced) through the packed path: finite logits near fp32's, on a model big enough to matter."""
    lm = load("tiny-llama-2m")
    batch = left_pad([prompt_ids(lm, p) for p in PROMPTS], pad_id(lm.tokenizer))
    logits = {}
    for dtype in (torch.float32, torch.bfloat16):
        pm = sampler.packed_model(lm.model, dtype)
        cache = sampler.KVCache(pm, len(PROMPTS), batch["input_ids"].shape[1])
        logits[dtype] = sampler.forward(pm, batch["input_ids"], batch["position_ids"],
                                        batch["attention_mask"].bool(), cache)
    with torch.no_grad():
        hf = lm.model(**batch).logits[:, -1]
    assert torch.allclose(logits[torch.float32], hf, atol=1e-4)
    assert torch.isfinite(logits[torch.bfloat16]).all()
    assert (logits[torch.bfloat16] - hf).abs().max() < 0.1 * hf.abs().max()


def test_left_padding_is_never_multiplied(monkeypatch):
    """The prefill's matrix multiplies see each prompt's real tokens only, and the logits still equal HF's."""
    lm = load("tiny-llama")
    batch = left_pad([prompt_ids(lm, p) for p in PROMPTS], pad_id(lm.tokenizer))
    real = int(batch["attention_mask"].sum())
    assert real < batch["input_ids"].numel()  # the batch has padding to skip
    pm = sampler.packed_model(lm.model, torch.float32)
    rows, linear = [], sampler._linear
    monkeypatch.setattr(sampler, "_linear", lambda pm, x, w: rows.append(x.shape[0]) or linear(pm, x, w))
    cache = sampler.KVCache(pm, len(PROMPTS), batch["input_ids"].shape[1])
    logits = sampler.forward(pm, batch["input_ids"], batch["position_ids"], batch["attention_mask"].bool(), cache)
    assert set(rows[:-1]) == {real} and rows[-1] == len(PROMPTS)  # every layer on real tokens; the head on last ones
    with torch.no_grad():
        assert torch.allclose(logits, lm.model(**batch).logits[:, -1], atol=1e-4)


def test_onednn_packing_follows_the_cpu(monkeypatch):
    """fp32 weights are oneDNN-packed on any CPU; bf16 only where oneDNN has native bf16 (it refuses on AVX2)."""
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this PyTorch build has no oneDNN")
    cpu = torch.device("cpu")
    assert sampler._use_onednn(torch.float32, cpu)
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    assert not sampler._use_onednn(torch.bfloat16, cpu)
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    assert sampler._use_onednn(torch.bfloat16, cpu)
    assert not sampler._use_onednn(torch.float16, cpu)
