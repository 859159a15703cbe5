"""The generalize stage's config: profiles, pairs, and bad values that fail before any work."""

from __future__ import annotations

import pytest

from superalign.config import ConfigError, load_config
from superalign.stages import main_names, names
from superalign.pipeline import required_models
from superalign.weak_to_strong import Config


def test_generalize_follows_train_and_inherits_model_and_seed():
    # DESIGN.md's order: baseline, train, assist, generalize, validate, stress; the researcher by name only.
    assert main_names() == ["baseline", "train", "assist", "generalize", "validate", "stress"]
    assert names() == [*main_names(), "research"]
    config = load_config("smoke", seed=3)
    assert config.stages == main_names()
    g = config.generalize
    assert g.model == "tiny-llama" and g.seed == 3
    assert g.resolved_pairs() == [("tiny-gpt2", "tiny-llama")]


def test_quick_profile_runs_at_least_four_tasks_and_three_seeds():
    g = load_config("quick").generalize
    assert len(g.tasks) >= 4 and g.n_seeds >= 3
    assert {"naive", "confidence"} <= set(g.methods)
    weak, strong = g.resolved_pairs()[0]
    assert weak == "minilm-l6" and strong.startswith("smollm2-135m-instruct")


def test_strong_layer_applies_to_the_pipeline_model():
    config = load_config("quick", model="tiny-llama", overrides=["stages=[generalize]"])
    assert config.generalize.resolved_pairs()[0][1].startswith("tiny-llama@")
    assert required_models(config) == list(dict.fromkeys(["minilm-l6", "tiny-llama"]))


def test_sweep_pairs_replace_weak_and_strong():
    g = Config(pairs=[["tiny-gpt2", "tiny-llama"], ["tiny-llama", "tiny-llama-2m:full"]])
    assert g.resolved_pairs() == [("tiny-gpt2", "tiny-llama"), ("tiny-llama", "tiny-llama-2m:full")]
    assert g.model_names() == ["tiny-gpt2", "tiny-llama", "tiny-llama-2m"]


@pytest.mark.parametrize("override, message", [
    ("generalize.methods=[bootstrap]", "needs at least one model in `intermediates`"),
    ("generalize.weak=minilm-l6@1.5", "a fractional layer must be in"),
    ("generalize.pairs=[[a]]", r"each pair is \[weak, strong\]"),
    ("generalize.n_seeds=0", "generalize.n_seeds"),
    ("generalize.tasks=[chess]", "generalize.tasks.0"),
    ("generalize.tasks=[]", "no task"),
])
def test_bad_values_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("smoke", overrides=[override])
