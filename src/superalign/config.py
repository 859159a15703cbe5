"""Configuration: one pydantic model, built from the stage list, drives CLI flags, YAML and ``config.json``.

A config is built in layers: the profile (its top-level values and each stage's ``PROFILES`` entry),
then a YAML file, then ``--set a.b=value`` overrides. Validation happens once, before any work, and a
bad value fails with a message that names the field (``baseline.n_fact: Input should be greater than
or equal to 0``). Importing this module imports no torch: ``superalign config`` answers at once.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from superalign import stages as stage_list

Profile = Literal["smoke", "quick", "standard", "full"]
PROFILE_NAMES = ("smoke", "quick", "standard", "full")

# The pipeline-wide part of each profile; each stage's part lives in its package (``PROFILES``).
# smoke: tiny random model in seconds; quick: the embedded model on a 2-core CPU in about 12 minutes;
# standard: quick plus the settings that need longer (online DPO, a larger assist study, a zoo of 15); full: a GPU.
TOP_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"model": "tiny-llama"},
    "quick": {"model": "smollm2-135m-instruct"},
    "standard": {"model": "smollm2-135m-instruct"},
    "full": {"model": "smollm2-135m-instruct"},
}
INHERITED = ("model", "seed")  # copied into each stage section that has the field and does not set it


class PipelineBase(BaseModel):
    """The main job. Stage sections (one field per stage) are added by :func:`config_model`."""

    model_config = ConfigDict(extra="forbid")

    profile: Profile = "quick"
    model: str = Field("smollm2-135m-instruct", description="model name, HF id or local directory")
    seed: int = Field(0, ge=0, description="seed of the task world and of sampling")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where models run (auto: CUDA when present)")
    stages: list[str] = Field(default_factory=stage_list.main_names, description="stages to run, in pipeline order")

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, value: list[str]) -> list[str]:
        # Aliases (rlhf, w2s) become the stage's name; the order is always the pipeline's.
        if not value:
            raise ValueError(f"no stage to run: name at least one of {', '.join(stage_list.names())}")
        wanted = {stage_list.get(name).name for name in value}
        return [name for name in stage_list.names() if name in wanted]

    @field_validator("model")
    @classmethod
    def _named_model(cls, value: str) -> str:
        if not value.strip():  # an empty name would load the current directory as a model
            raise ValueError("give a model name (superalign models list), an HF id or a local directory")
        return value

    @model_validator(mode="before")
    @classmethod
    def _inherit_model_and_seed(cls, data: Any) -> Any:
        # Why: a stage usually evaluates the pipeline's model; one rule keeps a single source of truth
        # while still letting a stage point elsewhere (e.g. a baseline of another model).
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for stage in stage_list.STAGES:
            section = data.get(stage.name) or {}
            if not isinstance(section, dict):
                continue  # pydantic names the field and the type it wanted
            section = dict(section)
            for key in INHERITED:
                if key in data and key in stage.Config.model_fields:
                    section.setdefault(key, data[key])
            data[stage.name] = section
        return data

    def section(self, stage: str):
        """The config of one stage."""
        return getattr(self, stage)


_MODELS: dict[tuple, type[PipelineBase]] = {}


def config_model() -> type[PipelineBase]:
    """The pipeline config class for the stages registered now (one field per stage, in order)."""
    key = tuple((s.name, s.module) for s in stage_list.STAGES)
    if key not in _MODELS:
        import warnings

        fields = {s.name: (s.Config, Field(default_factory=s.Config, description=s.help)) for s in stage_list.STAGES}
        with warnings.catch_warnings():
            # The stage "validate" shadows pydantic's deprecated BaseModel.validate classmethod, which no code
            # here calls: sections are read with config.section(name).
            warnings.filterwarnings("ignore", message='Field name "validate"', category=UserWarning)
            _MODELS[key] = create_model("PipelineConfig", __base__=PipelineBase, **fields)
    return _MODELS[key]


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
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({str(e).splitlines()[0]})") from None
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {text!r}: empty key part; expected e.g. baseline.n_fact=20")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def format_errors(err: ValidationError) -> str:
    lines = []
    errors = err.errors()
    top = {(e["loc"][0], e["msg"]) for e in errors if len(e["loc"]) == 1}
    for e in errors:
        if len(e["loc"]) > 1 and e["loc"][-1] in INHERITED and (e["loc"][-1], e["msg"]) in top:
            continue  # a section's copy of the pipeline's model or seed: said once, for the pipeline
        field = ".".join(str(p) for p in e["loc"]) or "(config)"
        if e["type"] == "extra_forbidden":
            lines.append(f"{field}: unknown key; {_known_keys(e['loc'][:-1])}")
            continue
        if e["type"] == "model_type":
            lines.append(f"{field}: a section, not a value: set its keys, e.g. --set {field}.KEY=VALUE")
            continue
        got = f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else ""
        msg = e["msg"].removeprefix("Value error, ")  # pydantic's prefix for a validator's own message
        lines.append(f"{field}: {msg}{got}")
    if len(lines) == 1:
        return f"invalid config: {lines[0]}"
    return "invalid config:\n  " + "\n  ".join(lines)


def _known_keys(loc: tuple) -> str:
    """'the keys of train.dpo are: beta, lr, ...' for the config section at ``loc`` (() is the top level)."""
    model: Any = config_model()
    for part in loc:
        field = model.model_fields.get(str(part)) if isinstance(model, type) else None
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return "see superalign config for the keys"
        model = annotation
    where = ".".join(map(str, loc)) or "the top level"
    return f"the keys of {where} are: {', '.join(model.model_fields)}"


def profile_data(profile: str) -> dict[str, Any]:
    """Profile ``profile`` as config data: the top-level values and every stage's section."""
    if profile not in PROFILE_NAMES:
        raise ConfigError(f"profile: must be one of {', '.join(PROFILE_NAMES)} (got {profile!r})")
    data: dict[str, Any] = {"profile": profile, **TOP_PROFILES[profile]}
    for stage in stage_list.STAGES:
        section = stage.profile(profile)
        if section:
            data[stage.name] = section
    return data


def validate(data: dict[str, Any]) -> PipelineBase:
    """Validate config data into the pipeline config, or raise ConfigError naming every bad field."""
    try:
        return config_model().model_validate(data)
    except ValidationError as e:  # an unknown stage name arrives here too, as a value error of `stages`
        raise ConfigError(format_errors(e)) from None


def load_config(
    profile: str = "quick",
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    **top_level: Any,
) -> PipelineBase:
    """Resolve profile -> YAML file -> ``--set`` overrides -> explicit top-level values, then validate."""
    data = profile_data(profile)
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            mark = getattr(e, "problem_mark", None)  # where YAML gave up: the line a user looks at
            where = f"line {mark.line + 1}: " if mark is not None else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"config file {path}: {where}{problem}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: expected a mapping at the top level")
        if loaded.get("profile", profile) != profile:  # the file applies over a profile, so it cannot pick one
            raise ConfigError(f"config file {path}: says profile: {loaded['profile']}, but the profile in use is "
                              f"{profile}; choose it with --profile {loaded['profile']}")
        data = _deep_merge(data, _resolve_aliases(loaded))
    for text in overrides or []:
        data = _deep_merge(data, _resolve_aliases(parse_override(text)))
    data = _deep_merge(data, {k: v for k, v in top_level.items() if v is not None})
    return validate(data)


def _resolve_aliases(data: dict[str, Any]) -> dict[str, Any]:
    """``rlhf: {...}`` is the ``train`` section, ``w2s: {...}`` the ``generalize`` one (older spellings)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = key
        if key not in PipelineBase.model_fields:
            try:
                name = stage_list.get(key).name
            except stage_list.UnknownStage:
                name = key  # validation names the unknown key
        out[name] = _deep_merge(out.get(name, {}), value) if isinstance(value, dict) and name in out else value
    return out


__all__ = ["ConfigError", "PROFILE_NAMES", "PipelineBase", "config_model", "load_config", "parse_override",
           "profile_data", "validate"]
