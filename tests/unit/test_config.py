import pytest

from superalign.config import PROFILES, ConfigError, load_config, parse_override


def test_profiles_validate():
    for profile in PROFILES:
        assert load_config(profile).profile == profile


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
    assert config.baseline.n_instruction == PROFILES["quick"]["baseline"]["n_instruction"]


def test_override_values_are_parsed_as_yaml():
    assert parse_override("a.b=3") == {"a": {"b": 3}}
    assert parse_override("stages=[baseline]") == {"stages": ["baseline"]}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("a.b")


@pytest.mark.parametrize("override, field", [("baseline.batch_size=0", "baseline.batch_size"),
                                             ("stages=[nope]", "stages.0"),
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


def test_evaluation_set_larger_than_the_world_fails_early():
    with pytest.raises(ConfigError, match="n_fact=100000"):
        load_config("smoke", overrides=["baseline.n_fact=100000"])


def test_one_seed_reaches_every_part_of_the_train_stage():
    train = load_config("smoke", seed=3).train
    assert {train.seed, train.feedback.seed, train.feedback.labeler.seed, train.reward_model.seed, train.sft.seed,
            train.dpo.seed, train.ppo.seed, train.rloo.seed, train.online_dpo.seed} == {3}
    own = load_config("smoke", overrides=["train.dpo.seed=5", "train.feedback.labeler.seed=6"], seed=3).train
    assert (own.dpo.seed, own.feedback.labeler.seed, own.feedback.seed) == (5, 6, 3)
