"""Activation readout (models.activations): the position, layers named as in internals, truncation, and the
cache that seeds, methods and tasks share."""

from __future__ import annotations

import pytest
import torch

from superalign.models import load
from superalign.weak_to_strong import Config, ModelBank, ModelSpec
from superalign.models import activations as Fe
from superalign.models.backbone import backbone_of, pool_hidden
from superalign.models.generation import pad_id, right_pad


def test_last_token_is_found_with_the_mask_for_left_and_right_padding():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)  # [b=2, s=4, d=1]
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert pool_hidden(hidden, right, "last").squeeze(-1).tolist() == [1.0, 7.0]
    assert pool_hidden(hidden, left, "last").squeeze(-1).tolist() == [3.0, 7.0]
    assert pool_hidden(hidden, right, "mean").squeeze(-1).tolist() == [0.5, 5.5]


def test_padding_does_not_change_features():
    lm = load("tiny-llama")
    texts = ["a short one", "a much longer text that forces padding of the first"]
    batched = Fe.extract(lm, texts, None, "last", 64, batch_size=2)
    alone = torch.cat([Fe.extract(lm, [t], None, "last", 64, batch_size=1) for t in texts])
    assert torch.allclose(batched, alone, atol=1e-5)


def test_truncation_reads_an_earlier_layer_and_restores_the_model():
    lm = load("tiny-llama-2m")
    n = Fe.n_layers(lm)
    assert n == 3
    full = Fe.extract(lm, ["hello world"], None, "last", 32)
    early = Fe.extract(lm, ["hello world"], 0, "last", 32)
    assert not torch.allclose(full, early)
    assert Fe.n_layers(lm) == 3 and torch.allclose(Fe.extract(lm, ["hello world"], None, "last", 32), full)
    with pytest.raises(ValueError, match="out of range"):
        Fe.extract(lm, ["x"], 3, "last", 32)  # layers 0..2


@pytest.mark.parametrize("name", ["tiny-llama-2m", "tiny-gpt2", "tiny-encoder"])
def test_layer_n_is_the_hook_layers_n_resid_post_through_the_final_norm(name):
    """The readout of layer 1 equals what the backbone cut after its second block returns (the numbers the
    weak-to-strong stage was measured with), read through the ``layers.1.resid_post`` hook."""
    lm = load(name)
    pooling = Fe.resolve_pooling("auto", lm.kind)
    texts = ["hello world", "a longer text to pad against"]
    rows = Fe.tokenize(lm, texts, 32, pooling)
    backbone = backbone_of(lm)
    batch = right_pad(rows, pad_id(lm.tokenizer))
    with torch.no_grad(), Fe.truncated(backbone, 1):
        cut = pool_hidden(backbone(**batch).last_hidden_state, batch["attention_mask"], pooling)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    read = Fe.extract(lm, texts, 1, pooling, 32, batch_size=2)
    assert order == [0, 1] and torch.equal(read, cut)


def test_cache_computes_each_text_once_and_persists(tmp_path):
    calls = []

    def compute(texts):
        calls.append(list(texts))
        return torch.stack([torch.full((3,), float(len(t))) for t in texts])

    cache = Fe.ActivationCache(tmp_path)
    a = cache.get("m", ["x", "yy", "x"], compute)
    b = cache.get("m", ["yy", "zzz"], compute)
    assert calls == [["x", "yy"], ["zzz"]] and a[0].tolist() == [1.0] * 3 and b[1].tolist() == [3.0] * 3
    again = Fe.ActivationCache(tmp_path)
    again.get("m", ["x", "zzz"], lambda t: pytest.fail("should come from disk"))
    assert again.missing("m", ["x", "new"]) == ["new"] and again.missing("other", ["x"]) == ["x"]


def test_model_spec_parsing():
    assert ModelSpec.parse("minilm-l6") == ModelSpec("minilm-l6", "probe", None)
    assert ModelSpec.parse("tiny-llama-2m:full") == ModelSpec("tiny-llama-2m", "full", None)
    assert ModelSpec.parse("smollm2-135m-instruct:lora@20") == ModelSpec("smollm2-135m-instruct", "lora", 20)
    assert ModelSpec.parse("HuggingFaceTB/SmolLM2-360M@0.5").resolve_layer(32) == 15  # after 16 of 32 blocks
    assert ModelSpec.parse("m@0.33").resolve_layer(30) == 9 and ModelSpec.parse("m@0").resolve_layer(30) == 0
    with pytest.raises(ValueError, match="fractional layer"):
        ModelSpec.parse("m@1.5")


def test_bank_shares_features_between_tasks_and_seeds():
    bank = ModelBank(Config(model="tiny-llama", weak="tiny-gpt2", max_length=32))
    spec = ModelSpec.parse("tiny-llama@0")
    first = bank.features(spec, ["one", "two"])
    computed = bank.cache.computed
    assert torch.equal(bank.features(spec, ["two", "one"])[0], first[1]) and bank.cache.computed == computed
    assert bank.feature_key(spec) != bank.feature_key(ModelSpec.parse("tiny-llama"))  # another layer, another key


@pytest.mark.parametrize("name", ["tiny-llama-2m", "tiny-gpt2"])
def test_several_layers_in_one_pass_equal_each_layer_read_alone(name):
    lm = load(name)
    texts = ["a short one", "a somewhat longer text to pad the batch with", "x"]
    layers = list(range(Fe.n_layers(lm)))
    together = Fe.extract_layers(lm, texts, layers, max_length=32)
    for layer in layers:
        alone = Fe.extract(lm, texts, layer, "last", max_length=32)
        torch.testing.assert_close(together[layer], alone)


def test_token_activations_are_the_plain_forward_s_at_every_token_whatever_the_batch():
    lm = load("tiny-llama-2m")
    rows = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]
    got = Fe.token_activations(lm, rows, ["layers.1.resid_post", "layers.0.mlp.act"], batch_size=2)
    for i, row in enumerate(rows):
        alone = lm.model(torch.tensor([row]), output_hidden_states=True).hidden_states[2][0]
        torch.testing.assert_close(got["layers.1.resid_post"][i], alone, atol=1e-5, rtol=1e-4)
        assert got["layers.0.mlp.act"][i].shape == (len(row), lm.model.config.intermediate_size)
