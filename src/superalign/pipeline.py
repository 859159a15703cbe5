"""The main job: the pipeline's stages in order, each cached in the run directory, with progress.

A stage whose results are already in the run directory (same config hash) is reused, so rerunning
``superalign run`` after an interruption only does the missing work; a long stage also keeps its
finished steps in ``work/<stage>/`` and resumes from them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from superalign.config import PipelineConfig
from superalign.progress import NullProgress, Progress
from superalign.records import write_jsonl


@dataclass
class PipelineOutcome:
    run_dir: Path
    report: Path
    ran: list[str] = field(default_factory=list)  # stages computed in this call
    reused: list[str] = field(default_factory=list)  # stages found finished in the run directory


def _run_baseline(config: PipelineConfig, run, progress: Progress) -> dict:
    from superalign import baseline

    result = baseline.run(config.baseline, progress=progress)
    write_jsonl(run.records_path(baseline.STAGE), result.evaluations)
    run.replace_metrics(baseline.STAGE, result.metrics)
    return {"model": result.model, "metrics": result.summary()}


def _run_train(config: PipelineConfig, run, progress: Progress) -> dict:
    from superalign import rlhf

    result = rlhf.run(config.train, progress=progress, out_dir=run.work_dir(rlhf.STAGE))
    write_jsonl(run.records_path(rlhf.STAGE), [*result.preferences, *result.evaluations, *result.points])
    run.replace_metrics(rlhf.STAGE, result.metrics)
    return {"model": result.model, "metrics": result.summary(), "notes": result.notes}


def _run_generalize(config: PipelineConfig, run, progress: Progress) -> dict:
    from superalign import weak_to_strong
    from superalign.models.sources import home

    # Frozen features are cached across runs (keyed by model weights and text): sweeps and reruns reuse them.
    result = weak_to_strong.run(config.generalize, progress=progress, cache_dir=home() / "features")
    run.replace_metrics(weak_to_strong.STAGE, result.metrics)
    return {"model": result.model, "tasks": result.tasks, "table": result.table, "seeds": result.seeds,
            "notes": result.notes, "seconds": round(result.seconds, 1)}


# Stage name -> function(config, run, progress) -> results dict. Order is config.STAGES.
STAGE_RUNNERS: dict[str, Callable] = {"baseline": _run_baseline, "train": _run_train, "generalize": _run_generalize}


def required_models(config: PipelineConfig) -> list[str]:
    """Every model the configured stages will load, in order of first use."""
    names = [config.baseline.model] if "baseline" in config.stages else []
    if "train" in config.stages:
        names += [config.train.model, config.train.reward_model.backbone]
    if "generalize" in config.stages:
        names += config.generalize.model_names()
    return list(dict.fromkeys(names))


def check_models_pulled(config: PipelineConfig) -> None:
    """Fail before any work if a stage would later stop on a model that is not pulled."""
    from superalign.models import sources

    missing = [name for name in required_models(config) if not sources.info(name).pulled]
    if missing:
        commands = "; ".join(f"superalign models pull {name}" for name in missing)
        raise sources.ModelNotPulled(f"not pulled yet: {', '.join(missing)}; run `{commands}`")


def run_name(config: PipelineConfig) -> str:
    """Readable prefix of the run directory; the config hash follows it."""
    model = Path(config.model).name if "/" in config.model else config.model
    return f"{config.profile}-{model}"


def run_pipeline(config: PipelineConfig, root: str | Path = "runs", progress: Progress | None = None,
                 force: bool = False, log: Callable[[str], None] = print) -> PipelineOutcome:
    """Run every configured stage (skipping finished ones unless ``force``) and render the report."""
    from superalign.report import render_report
    from superalign.runs import Run

    progress = progress or NullProgress()
    check_models_pulled(config)
    run = Run.open(Path(root), run_name(config), config)
    outcome = PipelineOutcome(run_dir=run.path, report=run.path / "report.html")
    for stage in config.stages:
        if run.stage_done(stage) and not force:
            log(f"{stage}: reusing finished results in {run.path}")
            outcome.reused.append(stage)
            continue
        if force:  # recompute means from scratch, not from an earlier attempt's finished steps
            shutil.rmtree(run.work_dir(stage), ignore_errors=True)
        results = STAGE_RUNNERS[stage](config, run, progress)
        for note in results.get("notes", []):
            log(f"warning: {stage}: {note}")
        run.mark_done(stage, results)
        outcome.ran.append(stage)
    run.write_results()
    outcome.report = render_report(run.path)
    return outcome
