"""Configuration: one pydantic model drives CLI flags, YAML files and the saved ``config.json``.

A config is built in layers: the profile's defaults, then a YAML file, then ``--set a.b=value``
overrides. Validation happens once, before any work, and a bad value fails with a message that
names the field (``baseline.n_fact: Input should be greater than or equal to 1``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from superalign.baseline import Config as BaselineConfig
from superalign.rlhf import Config as TrainConfig
from superalign.weak_to_strong import Config as GeneralizeConfig

Profile = Literal["smoke", "quick", "full"]
STAGES = ("baseline", "train", "generalize")  # in pipeline order; later issues add assist, validate, stress


class PipelineConfig(BaseModel):
    """The main job. Stage sections inherit ``model`` and ``seed`` from the top unless they set them."""

    model_config = ConfigDict(extra="forbid")

    profile: Profile = "quick"
    model: str = Field("smollm2-135m-instruct", description="model name, HF id or local directory")
    seed: int = Field(0, ge=0, description="seed of the task world and of sampling")
    stages: list[Literal[STAGES]] = Field(default_factory=lambda: list(STAGES))  # type: ignore[valid-type]
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    generalize: GeneralizeConfig = Field(default_factory=GeneralizeConfig)

    @model_validator(mode="before")
    @classmethod
    def _inherit_model_and_seed(cls, data: Any) -> Any:
        # Why: a stage usually evaluates the pipeline's model; one rule keeps a single source of truth
        # while still letting a stage point elsewhere (e.g. a baseline of another model).
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for stage in STAGES:
            section = dict(data.get(stage) or {})
            for key in ("model", "seed"):
                if key in data:
                    section.setdefault(key, data[key])
            data[stage] = section
        return data


# Profile defaults, as overrides of the model defaults. smoke: tiny random model in seconds;
# quick: the embedded model on a 2-core CPU in minutes; full: a GPU, closer to the published sizes.
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {
        "model": "tiny-llama",
        "baseline": {"n_instruction": 8, "n_fact": 8, "n_policy": 6, "max_new_tokens": 24,
                     "fact_max_new_tokens": 12, "n_boot": 200},
        "train": {
            "methods": ["best_of_n", "sft", "dpo", "ppo", "rloo", "online_dpo"],
            "feedback": {"n_prompts": 12, "max_new_tokens": 16},
            "reward_model": {"backbone": "tiny-encoder", "epochs": 1},
            "best_of_n": {"n_max": 4, "ns": [1, 2, 3, 4], "max_new_tokens": 16, "n_prompts": 4},
            "sft": {"epochs": 1},
            "dpo": {"epochs": 1, "pairs": "best_vs_worst"},
            "ppo": {"steps": 2, "prompts_per_step": 2, "max_new_tokens": 12},
            "rloo": {"steps": 2, "prompts_per_step": 2, "k": 2, "max_new_tokens": 12},
            "online_dpo": {"rounds": 2, "prompts_per_round": 3, "k": 2, "max_new_tokens": 12},
            "eval": {"n_instruction": 6, "n_fact": 4, "max_new_tokens": 16, "fact_max_new_tokens": 8,
                     "n_curve": 3, "eval_every": 1, "n_boot": 200},
        },
        # tiny random models: checks the plumbing, not the science (PGR is usually undefined here)
        "generalize": {"weak": "tiny-gpt2", "tasks": ["fact", "reward"], "n_seeds": 2, "n_train": 48,
                       "n_test": 24, "max_length": 96, "train": {"epochs": 4}},
    },
    "quick": {
        "model": "smollm2-135m-instruct",
        "baseline": {"n_instruction": 60, "n_fact": 120, "n_policy": 50, "max_new_tokens": 192},
        "train": {
            # RLOO stays available (`--set "train.methods=[...,rloo]"`) but not here: against this profile's reward
            # model (~100 comparisons) it never moved gold significantly (README), and it costs 7 minutes.
            "methods": ["best_of_n", "dpo", "online_dpo"],
            # Measured (README, "train stage"): at temperature 1 the samples were worse than greedy and 2 of
            # 3 comparisons were ties; at 0.7 over 128 prompts the MiniLM reward model reached 0.67 held-out
            # accuracy and DPO on each prompt's best-vs-worst pair raised held-out gold.
            # 160 prompts: the stage trains on 80% of them, about as many best-vs-worst pairs as the
            # exploration's 128 prompts gave. Batch 64 samples faster than 16 on 2 cores (measured: 180 vs 148
            # tokens/s at 96 new tokens).
            "feedback": {"n_prompts": 160, "samples_per_prompt": 4, "temperature": 0.7, "max_new_tokens": 96,
                         "batch_size": 64},
            # Best-vs-worst pairs only, 6 epochs (recipes/rlhf/explore_dpo.py, 54 pairs of unseen prompts): 0.76
            # accuracy vs 0.65 on all pairs, and its best-of-4 pick beats a random sample by +0.056 gold on
            # unseen prompts vs +0.010 (on its training prompts both are near the oracle's +0.156).
            "reward_model": {"backbone": "minilm-l6", "epochs": 6, "max_length": 256, "pairs": "best_vs_worst"},
            "best_of_n": {"n_max": 4, "ns": [1, 2, 3, 4], "temperature": 0.7, "max_new_tokens": 96,
                          "n_prompts": 32},
            "dpo": {"epochs": 3, "pairs": "best_vs_worst", "lr": 5e-4, "beta": 0.1, "batch_size": 8},
            # RLOO against the MiniLM reward model (recipes/rlhf/explore_dpo.py rloo, gold on unused train prompts):
            # lr 5e-4 with β=0.05 reached KL 24 nats and proxy +1.8 with no gold gain; lr 2e-4 with β=0.1
            # peaked early (+0.027 after 128 samples). Hence few steps at the gentler settings.
            "rloo": {"steps": 8, "prompts_per_step": 4, "k": 4, "lr": 2e-4, "kl_coef": 0.1, "temperature": 0.7,
                     "max_new_tokens": 64},
            # Online DPO with the labeler judging each round's samples afresh (recipes/rlhf/explore_dpo.py
            # online_dpo 8 32 RM_DIR labeler 1): test gold +0.094 [0.020, 0.168] after 8 rounds of 32 prompts at
            # one DPO pass per round; 3 passes per round overfit each round's ~18 pairs (−0.112 [−0.191, −0.029]),
            # and against the reward model as judge gold fell (−0.118 on dev after 4 rounds). In the stage, 8
            # rounds gave +0.073 [−0.001, 0.142] with the dev gain still rising at round 8 (README), hence 12.
            "online_dpo": {"rounds": 12, "prompts_per_round": 32, "k": 4, "judge": "labeler", "epochs": 1,
                           "lr": 5e-4, "beta": 0.1, "temperature": 0.7, "max_new_tokens": 96},
            # 96 paired prompts: with 32 the gain's interval was about ±0.09 wide, larger than the effects.
            "eval": {"n_instruction": 96, "n_fact": 24, "max_new_tokens": 128, "eval_every": 2, "n_curve": 12},
        },
        # The strong probe reads a third of the way up (block 10 of SmolLM2's 30): as accurate as the top on
        # these tasks (measured) at a third of the cost. Sizes keep frozen features, almost all of the time,
        # to minutes on 2 cores.
        "generalize": {"weak": "minilm-l6", "strong_layer": 0.33, "n_seeds": 5, "max_length": 192,
                       "task_sizes": {"fact": [600, 300], "policy": [800, 320], "instruction": [240, 120],
                                      "reward": [240, 120]}},
    },
    "full": {
        "model": "smollm2-135m-instruct",
        "baseline": {"n_instruction": 200, "n_fact": 136, "n_policy": 160, "max_new_tokens": 512,
                     "batch_size": 32},
    },
}


class ConfigError(ValueError):
    """A config that does not validate; the message lists every bad field by its dotted name."""


def _deep_merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict[str, Any]:
    """``"baseline.n_fact=20"`` -> ``{"baseline": {"n_fact": 20}}`` (the value is parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. baseline.n_fact=20")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(config)"
        got = f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else ""
        lines.append(f"{field}: {e['msg']}{got}")
    return "invalid config:\n  " + "\n  ".join(lines)


def load_config(
    profile: str = "quick",
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    **top_level: Any,
) -> PipelineConfig:
    """Resolve profile -> YAML file -> ``--set`` overrides -> explicit top-level values, then validate."""
    if profile not in PROFILES:
        raise ConfigError(f"profile: must be one of {', '.join(PROFILES)} (got {profile!r})")
    data: dict[str, Any] = _deep_merge({"profile": profile}, PROFILES[profile])
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"config file {path}: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: expected a mapping at the top level")
        data = _deep_merge(data, loaded)
    for text in overrides or []:
        data = _deep_merge(data, parse_override(text))
    data = _deep_merge(data, {k: v for k, v in top_level.items() if v is not None})
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e)) from None
