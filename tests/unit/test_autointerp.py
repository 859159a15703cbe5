"""Autointerp: a planted neuron is explained and scored exactly; the random baseline is not; the SAE learns
on a tiny model; the chat explainer's prompts are snapshots; the run end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from superalign import autointerp
from superalign.autointerp import explain as E
from superalign.autointerp.sae import SAE, quality, spliced_losses, train_sae

WORDS = [" the", " capital", " of", " France", " is", " Paris", ".", " Rome", " 42", " cat", " runs", "\n"]


def corpus(n: int = 120, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [[str(t) for t in rng.choice(WORDS, size=10)] for _ in range(n)]


def planted_unit(windows, fire=" Paris") -> list[np.ndarray]:
    return [np.array([5.0 if t == fire else 0.0 for t in w]) for w in windows]


def test_the_offline_explainer_finds_and_scores_a_planted_neuron_exactly():
    windows = corpus()
    acts = planted_unit(windows)
    data = autointerp.unit_data(acts, windows, n_top=10, seed=0)
    explanation = E.OfflineExplainer().explain(data.explain_windows, data.explain_acts)
    assert explanation.text == "the tokens ' Paris'"
    scores = E.score(explanation, data)
    assert scores == {"simulation": pytest.approx(1.0), "detection": 1.0, "fuzzing": 1.0}


def test_another_units_explanation_scores_near_chance_as_the_random_baseline():
    windows = corpus(seed=1)
    units = {0: planted_unit(windows, " Paris"), 1: planted_unit(windows, " cat")}
    config = autointerp.Config(n_top=10)
    out = autointerp.explain_units("layers.0.mlp.act", "neuron", units, windows, config, "toy")
    assert [u.explanation for u in out] == ["the tokens ' Paris'", "the tokens ' cat'"]
    for u in out:
        assert u.scores["simulation"] == pytest.approx(1.0)
        assert u.random["simulation"] < 0.2 and u.random["fuzzing"] <= 0.6
        assert u.examples and len(u.examples[0]["tokens"]) == len(u.examples[0]["acts"])


def test_position_and_regex_hypotheses_simulate_exactly():
    h = next(c for c in E.candidates([["a", "b"]], [np.zeros(2)]) if c.kind == "position" and c.values == (2,))
    assert h.predict(["x", "y", "z"]).tolist() == [1, 1, 0]
    digits = next(c for c in E.candidates([["a"]], [np.zeros(1)]) if c.text.startswith("digits"))
    assert digits.predict([" 42", " cat", "7"]).tolist() == [1, 0, 1]


def test_the_sae_lowers_reconstruction_error_on_a_tiny_models_activations():
    from superalign.models import load
    from superalign.models.activations import token_activations

    lm = load("tiny-llama")
    rows = autointerp.windows(lm, autointerp.corpus()[:160], 16)
    acts = torch.cat([a[1:] for a in token_activations(lm, rows, ["layers.1.resid_post"])["layers.1.resid_post"]])
    train, held = acts[:-300], acts[-300:]
    untrained = quality(SAE(acts.shape[1], 128, "topk", k=8), held)
    sae, history = train_sae(train, 128, "topk", k=8, epochs=6)
    trained = quality(sae, held)
    assert history[-1] < history[0]
    assert trained.nmse < 0.75 * untrained.nmse and trained.l0 <= 8
    relu, _ = train_sae(train, 128, "relu", l1=1e-3, epochs=6)
    assert quality(relu, held).nmse < untrained.nmse
    clean, spliced, zero = spliced_losses(lm, sae, 1, rows[:4])
    assert np.isfinite([clean, spliced, zero]).all() and spliced != clean


def test_prompt_templates_snapshot_and_the_simulation_parser():
    examples = E.format_examples([[" Paris", " is"]], [np.array([4.0, 0.0])])
    assert examples == "' Paris'\t10\n' is'\t0"
    assert E.EXPLAIN_TEMPLATE.format(examples=examples) == (
        "We are studying one unit of a neural network. It activates on some tokens of short texts.\n"
        "Below are texts, one token per line as \"token<TAB>activation\" (0 to 10; 0 means inactive).\n\n"
        "' Paris'\t10\n' is'\t0\n\n"
        "In one short phrase, what does this unit respond to? Answer with the phrase only.")
    assert E.SIMULATE_TEMPLATE.format(explanation="city names", tokens="' Paris'\n' is'") == (
        "A unit of a neural network responds to: city names\n"
        "For each token of the text below, predict its activation from 0 (none) to 10 (strongest).\n"
        "Reply with one line per token, \"token<TAB>activation\", in the same order.\n\n' Paris'\n' is'")
    assert E.parse_simulation("' Paris'\t9\ngarbage\n' is'\t 0", 3).tolist() == [9.0, 0.0, 0.0]


def test_a_chat_explainer_and_simulator_are_scored_by_the_same_code():
    from superalign.models.chat import ScriptedChatModel

    def reply(messages):
        text = messages[-1]["content"]
        if text.startswith("We are studying"):
            return "the word Paris\nextra line"
        tokens = text.split("\n\n", 1)[1].splitlines()
        return "\n".join(f"{t}\t{10 if 'Paris' in t else 0}" for t in tokens)

    windows = corpus(seed=2)
    data = autointerp.unit_data(planted_unit(windows), windows, n_top=6, seed=0)
    explainer = E.ChatExplainer(ScriptedChatModel(reply))
    explanation = explainer.explain(data.explain_windows, data.explain_acts)
    assert explanation.text == "the word Paris"
    assert E.score(explanation, data)["simulation"] == pytest.approx(1.0)


def test_run_on_a_tiny_model_measures_the_sae_and_explains_both_families():
    from superalign.models import load

    config = autointerp.Config(n_sae_windows=200, n_eval_windows=20, n_interp_windows=60, n_units=3, epochs=2, k=8)
    result = autointerp.run(config, load("tiny-llama"))
    names = {m.name for m in result.metrics}
    assert {"sae.nmse", "sae.dead_fraction", "sae.loss_recovered", "interp.neuron.simulation",
            "interp.sae.fuzzing.random"} <= names
    assert [u.family for u in result.units] == ["neuron"] * 3 + ["sae"] * 3
    with pytest.raises(ValueError, match="interp.layer 7: this model has layers 0..1"):
        autointerp.run(autointerp.Config(layer=7), load("tiny-llama"))
