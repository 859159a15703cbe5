"""A run directory read back from disk for the report: config, metrics, stage markers and records.

Never a model, never torch. Unreadable parts become warnings shown at the top of the report.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from superalign.records import (AttackAttempt, AuditFinding, Critique, DebateTranscript, Evaluation, ExploitAttempt, Flaw,
                                Judgement, Metric, OptimizationPoint, Preference, ProbeResult, RecordFileError,
                                ResearchFinding, ResearchStep, UnitExplanation, W2SScore, W2SSeed, iter_jsonl)


@dataclass
class StageData:
    """Everything the report knows about one stage."""

    name: str
    info: dict | None = None  # the parsed stages/<name>.json, when the stage finished
    metrics: list[Metric] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    preferences: list[Preference] = field(default_factory=list)
    judgements: list[Judgement] = field(default_factory=list)
    points: list[OptimizationPoint] = field(default_factory=list)
    w2s_scores: list[W2SScore] = field(default_factory=list)
    w2s_seeds: list[W2SSeed] = field(default_factory=list)
    attempts: list[AttackAttempt] = field(default_factory=list)
    findings: list[AuditFinding] = field(default_factory=list)
    probe_results: list[ProbeResult] = field(default_factory=list)
    units: list[UnitExplanation] = field(default_factory=list)
    critiques: list[Critique] = field(default_factory=list)
    flaws: list[Flaw] = field(default_factory=list)
    transcripts: list[DebateTranscript] = field(default_factory=list)
    research_steps: list[ResearchStep] = field(default_factory=list)
    research_findings: list[ResearchFinding] = field(default_factory=list)
    exploits: list[ExploitAttempt] = field(default_factory=list)


@dataclass
class RunData:
    """A run directory as read from disk."""

    path: Path
    name: str
    config_hash: str
    config: dict | None
    version: str | None
    stages: dict[str, StageData]
    warnings: list[str]


# record class -> StageData list it goes to (records of a stage's file belong to that stage)
_LISTS = {Preference: "preferences", Judgement: "judgements", OptimizationPoint: "points", W2SScore: "w2s_scores",
          W2SSeed: "w2s_seeds", AttackAttempt: "attempts", AuditFinding: "findings", ProbeResult: "probe_results",
          UnitExplanation: "units", Critique: "critiques", Flaw: "flaws", DebateTranscript: "transcripts",
          ResearchStep: "research_steps", ResearchFinding: "research_findings", ExploitAttempt: "exploits"}


def _read_records(path: Path, warnings: list[str]) -> list:
    """All records of a JSONL file up to its first bad line (which becomes a warning)."""
    out = []
    try:
        for rec in iter_jsonl(path):
            out.append(rec)
    except RecordFileError as err:
        warnings.append(f"{err} (later lines of this file are not shown)")
    except OSError as err:
        warnings.append(f"{path}: cannot read: {err}")
    return out


def _order(names: list[str]) -> list[str]:
    """Registered stages in pipeline order first, then any other stage in order of appearance."""
    from superalign.stages import names as pipeline_names

    known = [s for s in pipeline_names() if s in names]
    return known + [s for s in names if s not in known]


def load_run(run_dir: str | os.PathLike) -> RunData:
    """Read a run directory into :class:`RunData`; unreadable parts become warnings, not errors."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a run directory")
    warnings: list[str] = []
    stages: dict[str, StageData] = {}

    def stage(name: str) -> StageData:
        return stages.setdefault(name, StageData(name))

    config_doc: dict = {}
    try:
        config_doc = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        warnings.append(f"config.json is missing or unreadable: {err}")

    seen_metrics: set[tuple] = set()
    if (run_dir / "metrics.jsonl").exists():
        for m in _read_records(run_dir / "metrics.jsonl", warnings):
            if isinstance(m, Metric):
                stage(m.stage).metrics.append(m)
                seen_metrics.add((m.stage, m.name, m.model))

    for path in sorted((run_dir / "stages").glob("*.json")):
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(info, dict) or "results" not in info:
                raise ValueError("no results")
            stage(str(info.get("stage", path.stem))).info = info
        except (OSError, ValueError):
            warnings.append(f"stages/{path.name} is incomplete: that stage is shown as not finished")

    for path in sorted((run_dir / "records").glob("*.jsonl")):
        for rec in _read_records(path, warnings):
            if isinstance(rec, Evaluation):
                stage(rec.stage).evaluations.append(rec)
            elif isinstance(rec, Metric):
                if (rec.stage, rec.name, rec.model) not in seen_metrics:
                    stage(rec.stage).metrics.append(rec)  # metrics.jsonl wins over a copy in records
            elif type(rec) in _LISTS:
                getattr(stage(path.stem), _LISTS[type(rec)]).append(rec)

    return RunData(
        path=run_dir,
        name=str(config_doc.get("name") or run_dir.name),
        config_hash=str(config_doc.get("config_hash") or ""),
        config=config_doc.get("config"),
        version=config_doc.get("superalign_version"),
        stages={s: stages[s] for s in _order(list(stages))},
        warnings=warnings,
    )
