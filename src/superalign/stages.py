"""The stage contract and the ordered list of the pipeline's stages.

A stage is a package that exposes, at import and without importing torch:

- ``STAGE``: its name (the config section, the CLI subcommand, ``records/<name>.jsonl``, ``docs/<name>.md``);
- ``Config``: a pydantic model of its settings (``extra="forbid"``; ``model`` and ``seed`` are inherited
  from the top of the pipeline config when the Config has them);
- ``Result``: a pydantic model with ``model``, ``metrics`` (:class:`~superalign.records.Metric`),
  ``notes``, ``records()`` (what goes to ``records/<name>.jsonl``) and ``summary()`` (a JSON-able dict
  kept in ``stages/<name>.json``; its ``"seconds"``, when a dict ``{part: seconds}``, splits the stage's time
  in the time table, e.g. the stress stage's zoo and audit);
- ``run(config, ctx) -> Result``, with ``ctx`` a :class:`~superalign.context.RunContext`;

and optionally:

- ``PROFILES``: ``{profile: overrides of Config's defaults}`` (smoke, quick, full);
- ``inputs(config) -> Inputs``: the models and files it reads, checked before any work and hashed into
  its cache key, so that an edited file or new weights rerun it, and the earlier stages whose results it
  reads (their cache keys join its own; their summaries reach it as ``ctx.upstream``);
- ``check(config, pipeline_config)``: raise ``ValueError`` before any work when this stage's config does not
  fit the rest of the pipeline (e.g. it reads a policy that the train stage is not configured to train);
- ``add_arguments(parser)`` and ``overrides(args) -> dict``: flags of its CLI subcommand beyond the
  ones generated from Config's fields;
- ``show(summary, console)``: what its CLI subcommand prints at the end;
- ``plan(config) -> list[str]``: lines the pipeline prints before any work when the stage will run, for work
  that is long the first time and cached afterwards (the stress stage's organisms not trained yet).

The pipeline, the config model, the CLI and the report are built from :data:`STAGES`; adding a stage is
one package and one line here (or :func:`register` from outside, e.g. a plugin or a test).
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol


class StageResult(Protocol):
    """What every stage's ``run`` returns (see the module docstring)."""

    model: str
    metrics: list
    notes: list[str]

    def records(self) -> list: ...

    def summary(self) -> dict: ...


class InputMissing(FileNotFoundError):
    """A file (or a saved result) a stage reads does not exist; raised before any work where it can be."""


@dataclass(frozen=True)
class Inputs:
    """What a stage reads besides its config: model names and files, by content."""

    models: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    # Validators of the files' content, run before any work (a bad line stops the run in seconds, not
    # after minutes of sampling); each raises an error whose message names file:line.
    checks: list[Callable[[], None]] = field(default_factory=list)
    # Earlier stages whose results this one reads (e.g. validate red-teams the train stage's policy).
    stages: list[str] = field(default_factory=list)
    # Other content the results depend on, already hashed (e.g. the tasks an evaluation server serves).
    extra: dict[str, str] = field(default_factory=dict)

    def hashes(self) -> dict[str, str]:
        """``{"model:NAME": weights hash, "file:PATH": content hash, ...extra}``: what a cache key must include."""
        from superalign.models.sources import fingerprint

        return {**{f"model:{m}": fingerprint(m) for m in self.models},
                **{f"file:{p}": file_digest(Path(p)) for p in self.files}, **self.extra}


def file_digest(path: Path) -> str:
    """First 16 hex digits of the sha256 of a file's content."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Stage:
    """One entry of the pipeline: a name and the package that implements the contract."""

    name: str
    module: str  # the package, imported on first use
    help: str
    aliases: tuple[str, ...] = ()  # older spellings, accepted by the CLI and in ``stages: [...]``
    main: bool = True  # part of the main job (``superalign run``); False: run by name only (its subcommand)

    @property
    def package(self) -> ModuleType:
        return importlib.import_module(self.module)

    @property
    def Config(self) -> type:  # noqa: N802 - the contract's name
        return self.package.Config

    def profile(self, name: str) -> dict[str, Any]:
        """This stage's section of profile ``name`` (empty: the Config's defaults)."""
        return dict(getattr(self.package, "PROFILES", {}).get(name, {}))

    def inputs(self, config) -> Inputs:
        reader = getattr(self.package, "inputs", None)
        if reader is not None:
            return reader(config)
        return Inputs(models=[config.model] if hasattr(config, "model") else [])

    def check(self, config, pipeline) -> None:
        """The stage's own check of its section against the whole pipeline config, when it has one."""
        checker = getattr(self.package, "check", None)
        if checker is not None:
            checker(config, pipeline)

    def plan(self, config) -> list[str]:
        """What the stage says before the run starts (nothing when it has no ``plan``)."""
        planner = getattr(self.package, "plan", None)
        return list(planner(config)) if planner is not None else []

    def run(self, config, ctx) -> StageResult:
        return self.package.run(config, ctx)


STAGES: list[Stage] = [
    Stage("baseline", "superalign.baseline", "greedy answers to held-out world tasks, scored by gold"),
    Stage("train", "superalign.rlhf", "feedback, a reward model and policy optimization (RLHF)", ("rlhf",)),
    Stage("assist", "superalign.assist", "AI critiques and debate that help a weaker judge, scored against planted "
          "flaws and hidden passages"),
    Stage("generalize", "superalign.weak_to_strong", "weak-to-strong generalization: PGR over seeds", ("w2s",)),
    Stage("validate", "superalign.validate", "automated red-teaming of the trained policy, and a DPO patch from it"),
    Stage("stress", "superalign.stress", "a zoo of misaligned model organisms, audited blind and scored"),
    # Many runs of another stage: by name only (superalign research), never part of the main job.
    Stage("research", "superalign.researcher", "the automated researcher: proposes weak-to-strong ideas, runs each "
          "on several seeds against the evaluation server, keeps the best and checks it on fresh seeds", main=False),
]


class UnknownStage(ValueError):
    """A stage name that no registered stage has; the message lists the known ones."""


def names() -> list[str]:
    """Stage names in pipeline order."""
    return [s.name for s in STAGES]


def main_names() -> list[str]:
    """The main job's stages (``superalign run`` with no ``stages`` set), in pipeline order."""
    return [s.name for s in STAGES if s.main]


def get(name: str) -> Stage:
    """The stage called ``name`` or one of its aliases."""
    for stage in STAGES:
        if name == stage.name or name in stage.aliases:
            return stage
    known = ", ".join(f"{s.name}" + (f" (or {', '.join(s.aliases)})" if s.aliases else "") for s in STAGES)
    raise UnknownStage(f"unknown stage {name!r}; the stages are {known}")


def register(stage: Stage, after: str | None = None) -> None:
    """Add a stage (after ``after``, else last); replaces a stage of the same name."""
    unregister(stage.name)
    position = len(STAGES) if after is None else names().index(get(after).name) + 1
    STAGES.insert(position, stage)


def unregister(name: str) -> None:
    STAGES[:] = [s for s in STAGES if s.name != name]


__all__ = ["InputMissing", "Inputs", "STAGES", "Stage", "StageResult", "UnknownStage", "get", "main_names", "names", "register", "unregister"]
