import pytest

import subprocess
import sys

from superalign.config import PROFILE_NAMES, ConfigError, load_config, parse_override, profile_data


def test_profiles_validate():
    for profile in PROFILE_NAMES:
        assert load_config(profile).profile == profile


def test_profiles_come_from_the_stage_packages():
    from superalign import baseline, rlhf, weak_to_strong

    quick = profile_data("quick")
    assert quick["baseline"] == baseline.PROFILES["quick"] and quick["train"] == rlhf.PROFILES["quick"]
    assert quick["generalize"] == weak_to_strong.PROFILES["quick"] and quick["model"] == "smollm2-135m-instruct"
    assert load_config("smoke").train.reward_model.backbone == "tiny-encoder"


@pytest.mark.parametrize("recipe", sorted(__import__("pathlib").Path(__file__).parents[2].glob("recipes/*/*.yaml")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipes_validate(recipe):
    config = load_config("full", recipe)
    assert config.stages and recipe.parent.name in config.stages


def test_stage_aliases_are_the_stage_names():
    config = load_config("smoke", overrides=["stages=[w2s, rlhf]", "rlhf.dpo.beta=0.3"])
    assert config.stages == ["train", "generalize"] and config.train.dpo.beta == 0.3


def test_reading_the_config_imports_no_torch():
    code = ("import sys; from superalign.config import load_config; load_config('quick'); "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_stage_sections_inherit_model_and_seed_unless_set():
    config = load_config("smoke", overrides=["seed=3"])
    assert config.baseline.model == "tiny-llama" and config.baseline.seed == 3
    config = load_config("smoke", overrides=["baseline.model=tiny-llama-2m"], model="tiny-gpt2")
    assert config.model == "tiny-gpt2" and config.baseline.model == "tiny-llama-2m"


def test_layers_apply_in_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("baseline:\n  n_fact: 11\n  n_policy: 5\n")
    config = load_config("quick", path, overrides=["baseline.n_policy=7"])
    assert config.baseline.n_fact == 11 and config.baseline.n_policy == 7
    assert config.baseline.n_instruction == profile_data("quick")["baseline"]["n_instruction"]


def test_override_values_are_parsed_as_yaml():
    assert parse_override("a.b=3") == {"a": {"b": 3}}
    assert parse_override("stages=[baseline]") == {"stages": ["baseline"]}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("a.b")


@pytest.mark.parametrize("override, field", [("baseline.batch_size=0", "baseline.batch_size"),
                                             ("stages=[nope]", "unknown stage 'nope'"),
                                             ("train.dpo.bogus=1", "train.dpo.bogus"),
                                             ("bogus=1", "bogus")])
def test_bad_values_name_the_field(override, field):
    with pytest.raises(ConfigError) as err:
        load_config("smoke", overrides=[override])
    assert field in str(err.value)


def test_bad_profile_and_file(tmp_path):
    with pytest.raises(ConfigError, match="profile"):
        load_config("huge")
    path = tmp_path / "c.yaml"
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config("quick", path)
    path.write_text("baseline:\n  n_fact: 3\nbad: value: here\n")  # malformed YAML: the line it is on
    with pytest.raises(ConfigError, match="c.yaml: line 3: mapping values are not allowed here"):
        load_config("quick", path)


@pytest.mark.parametrize("kwargs, message", [
    ({"overrides": ["stages=[]"]}, "stages: no stage to run: name at least one of baseline"),
    ({"model": ""}, "model: give a model name"),
    ({"overrides": ["train.dpo.betta=1"]}, "train.dpo.betta: unknown key; the keys of train.dpo are: beta, lr,"),
    ({"overrides": ["nope=1"]}, "nope: unknown key; the keys of the top level are: profile, model, seed"),
    ({"overrides": ["baseline=3"]}, "baseline: a section, not a value: set its keys, e.g. --set baseline.KEY=VALUE"),
    ({"seed": -1}, "seed: Input should be greater than or equal to 0 (got -1)"),
])
def test_a_newcomers_mistakes_get_one_line_that_says_the_fix(kwargs, message):
    """From a newcomer's session: an empty stage list crashed after writing a run, an empty model name loaded the
    current directory, a bad seed gave 14 lines (one per section that copies it), unknown keys named no key."""
    with pytest.raises(ConfigError) as err:
        load_config("smoke", **kwargs)
    assert str(err.value).startswith(f"invalid config: {message}"), str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_a_config_file_cannot_pick_another_profile(tmp_path):
    """A file applies over a profile: its ``profile:`` was recorded but not applied (a run said smoke and cost
    a quick run). The same profile (superalign config's own output read back) is fine."""
    path = tmp_path / "c.yaml"
    path.write_text("profile: smoke\n")
    assert load_config("smoke", path).model == "tiny-llama"
    with pytest.raises(ConfigError, match="says profile: smoke, but the profile in use is quick; choose it with "
                                          "--profile smoke"):
        load_config("quick", path)


def test_evaluation_set_larger_than_the_world_fails_early():
    with pytest.raises(ConfigError, match="n_fact=100000"):
        load_config("smoke", overrides=["baseline.n_fact=100000"])


def test_one_seed_reaches_every_part_of_the_train_stage():
    train = load_config("smoke", seed=3).train
    assert {train.seed, train.feedback.seed, train.feedback.labeler.seed, train.reward_model.seed, train.sft.seed,
            train.dpo.seed, train.ppo.seed, train.rloo.seed, train.online_dpo.seed} == {3}
    own = load_config("smoke", overrides=["train.dpo.seed=5", "train.feedback.labeler.seed=6"], seed=3).train
    assert (own.dpo.seed, own.feedback.labeler.seed, own.feedback.seed) == (5, 6, 3)
