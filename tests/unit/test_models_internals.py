"""Hooks over unmodified HF models: canonical names, cached activations, replacement, cleanup."""

import pytest
import torch

from superalign.models import hook_names, load, run_with_cache, run_with_hooks


def _inputs(lm):
    return dict(lm.tokenizer(["hello there", "hi"], return_tensors="pt", padding=True))


def _norm(model):
    return model.model.norm if hasattr(model, "model") else model.transformer.ln_f


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_resid_post_equals_hidden_states(name):
    lm = load(name)
    inputs = _inputs(lm)
    n_layers = lm.model.config.num_hidden_layers
    with torch.no_grad():
        ref = lm.model(**inputs, output_hidden_states=True)
        result = run_with_cache(lm, inputs, ["embed"] + [f"layers.{i}.resid_post" for i in range(n_layers)])
    assert torch.allclose(result.logits, ref.logits)
    assert torch.allclose(result.cache["embed"], ref.hidden_states[0])
    for i in range(n_layers - 1):
        assert torch.allclose(result.cache[f"layers.{i}.resid_post"], ref.hidden_states[i + 1], atol=1e-6)
    # HF's last hidden state has the final norm applied; ours is the raw residual stream
    last = result.cache[f"layers.{n_layers - 1}.resid_post"]
    with torch.no_grad():
        assert torch.allclose(_norm(lm.model)(last), ref.hidden_states[n_layers], atol=1e-5)


@pytest.mark.parametrize("name,d_mlp", [("tiny-llama", 128), ("tiny-gpt2", 256)])
def test_shapes_and_residual_decomposition(name, d_mlp):
    lm = load(name)
    inputs = _inputs(lm)
    batch, seq = inputs["input_ids"].shape
    d = lm.model.config.hidden_size
    with torch.no_grad():
        cache = run_with_cache(lm, inputs).cache  # all names
    assert set(cache) == set(hook_names(lm))
    assert cache["layers.0.attn.out"].shape == (batch, seq, d)
    assert cache["layers.0.mlp.out"].shape == (batch, seq, d)
    assert cache["layers.1.mlp.act"].shape == (batch, seq, d_mlp)
    # pre-norm block: resid_post = resid_pre + attn.out + mlp.out
    rebuilt = cache["embed"] + cache["layers.0.attn.out"] + cache["layers.0.mlp.out"]
    assert torch.allclose(rebuilt, cache["layers.0.resid_post"], atol=1e-5)


def test_hook_names_vocabulary():
    names = hook_names(load("tiny-llama"))
    assert names[0] == "embed"
    assert {"layers.1.resid_post", "layers.1.attn.out", "layers.1.mlp.out", "layers.1.mlp.act"} <= set(names)
    assert "layers.2.resid_post" not in names
    encoder_names = hook_names(load("tiny-encoder"))
    assert encoder_names == ["embed", "layers.0.resid_post", "layers.1.resid_post"]


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_replacing_an_activation_changes_logits_and_hooks_are_removed(name):
    lm = load(name)
    inputs = _inputs(lm)
    seen = []

    def zero_mlp(act, hook_name):
        seen.append((hook_name, tuple(act.shape)))
        return torch.zeros_like(act)

    with torch.no_grad():
        clean = lm.model(**inputs).logits
        patched = run_with_hooks(lm, inputs, [("layers.0.mlp.act", zero_mlp), ("layers.1.attn.out", lambda a, n: a * 0)])
        after = lm.model(**inputs).logits
    assert seen and seen[0][0] == "layers.0.mlp.act"
    assert not torch.allclose(clean, patched)
    assert torch.equal(clean, after)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in lm.model.modules())


def test_observing_hook_returning_none_changes_nothing():
    lm = load("tiny-llama")
    inputs = _inputs(lm)
    with torch.no_grad():
        clean = lm.model(**inputs).logits
        observed = run_with_hooks(lm.model, inputs, [("layers.0.resid_post", lambda a, n: None)])
    assert torch.equal(clean, observed)


def test_hooks_removed_when_forward_raises():
    lm = load("tiny-llama")

    def boom(act, name):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_with_hooks(lm, _inputs(lm), [("layers.0.mlp.out", boom)])
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in lm.model.modules())


def test_unknown_name():
    lm = load("tiny-llama")
    with pytest.raises(KeyError, match="layers.9.resid_post"):
        run_with_cache(lm, _inputs(lm), ["layers.9.resid_post"])


def test_cache_on_encoder():
    lm = load("tiny-encoder")
    inputs = _inputs(lm)
    result = run_with_cache(lm, inputs, ["layers.1.resid_post"])
    assert torch.allclose(result.cache["layers.1.resid_post"], result.logits)  # last layer = last_hidden_state
