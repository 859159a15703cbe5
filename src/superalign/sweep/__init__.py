"""Any stage over seeds × a config grid, one pipeline run per cell, as Ray tasks.

    superalign sweep train --seeds 0 1 2                                 # the train stage on three seeds
    superalign sweep generalize --grid generalize.confidence.alpha_max=0.25,0.5,0.75 --n-seeds 3
    superalign sweep train --address ray://head:10001                    # on an existing Ray cluster

Each cell (a grid point and a seed) is an ordinary :func:`superalign.pipeline.run_pipeline` call: the same run
directory, records, report and stage cache as ``superalign run`` with that config, so a sweep and a run share
finished work, and a killed sweep restarted with the same arguments runs only the cells that have not finished
(and, inside an unfinished cell, only its unfinished stages). The sweep's own folder
(``<out>/sweeps/<stage>-<hash>/``) keeps its plan, the summary over seeds per grid point (mean, t-interval, and
a bootstrap interval where there are enough seeds for one), and one across-seeds page per point.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from superalign.progress import NullProgress, Progress

# The bootstrap over seeds needs enough seeds to resample: with 3 there are only 10 distinct resamples.
MIN_BOOTSTRAP_SEEDS = 5


class SweepError(ValueError):
    """A sweep that cannot start (a bad grid, no seeds, an unknown stage); the message names what is wrong."""


@dataclass(frozen=True)
class Cell:
    """One pipeline run of a sweep: a grid point (``{dotted key: value}``) and a seed."""

    point: dict[str, Any]
    seed: int
    config: Any  # the PipelineBase of this cell
    run_dir: Path

    @property
    def label(self) -> str:
        return point_label(self.point) + f" seed={self.seed}"


@dataclass
class SweepOutcome:
    folder: Path
    cells: list[Cell]
    ran: list[Cell] = field(default_factory=list)  # computed in this call
    skipped: list[Cell] = field(default_factory=list)  # found finished
    failed: dict[str, str] = field(default_factory=dict)  # cell label -> first line of the error
    rows: list[dict] = field(default_factory=list)  # the summary (see :func:`summarize`)


def point_label(point: dict[str, Any]) -> str:
    return " ".join(f"{k}={json.dumps(v)}" for k, v in point.items()) or "(base config)"


def parse_grid(texts: list[str]) -> dict[str, list]:
    """``["train.dpo.beta=0.05,0.1", "generalize.methods=[[naive],[confidence]]"]`` -> ``{key: [values]}``.

    Values are YAML: ``KEY=V1,V2,...``, or a YAML list ``KEY=[V1, V2]`` when a value itself holds commas.
    """
    import yaml

    grid: dict[str, list] = {}
    for text in texts:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise SweepError(f"--grid {text!r}: expected KEY=V1,V2,... e.g. train.dpo.beta=0.05,0.1")
        try:
            values = yaml.safe_load(raw) if raw.lstrip().startswith("[") else [yaml.safe_load(v) for v in raw.split(",")]
        except yaml.YAMLError:
            raise SweepError(f"--grid {text!r}: the values are not YAML") from None
        if not isinstance(values, list) or not values:
            raise SweepError(f"--grid {text!r}: no values")
        if key in grid:
            raise SweepError(f"--grid {key} is given twice")
        grid[key] = values
    return grid


def grid_points(grid: dict[str, list]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the first key varying slowest ([{}] for an empty grid)."""
    import itertools

    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def plan(stage: str, seeds: list[int], grid: dict[str, list], make_config: Callable[[list[str], int], Any],
         root: str | Path) -> list[Cell]:
    """The cells of a sweep, each config validated (a bad key stops here, before any work).

    ``make_config(overrides, seed)`` resolves a pipeline config (profile, file, ``--set``) with ``overrides``
    (``KEY=VALUE`` strings) on top; each cell runs ``stage`` and the stages whose results it reads.
    """
    from superalign import stages as stage_list
    from superalign.pipeline import run_dir, with_upstream

    if not seeds:
        raise SweepError("no seeds: give --seeds S1 S2 ... or --n-seeds N")
    if len(set(seeds)) != len(seeds):
        raise SweepError(f"seeds repeat ({seeds}): runs of one seed are not independent draws")
    name = stage_list.get(stage).name
    cells = []
    for point in grid_points(grid):
        overrides = [f"{k}={json.dumps(v)}" for k, v in point.items()]
        for seed in seeds:
            config = with_upstream(make_config(overrides, seed), name)
            cells.append(Cell(point, seed, config, run_dir(config, root)))
    return cells


def folder_for(root: str | Path, stage: str, cells: list[Cell]) -> Path:
    """``<root>/sweeps/<stage>-<hash of the cells' configs>``: the same sweep finds its folder again."""
    digest = hashlib.sha256(json.dumps([c.config.model_dump(mode="json") for c in cells], sort_keys=True)
                            .encode()).hexdigest()[:8]
    return Path(root) / "sweeps" / f"{stage}-{digest}"


def run_cell(config_data: dict, root: str) -> dict:
    """One cell, in whichever process runs it: the pipeline with this config (models are already pulled)."""
    from superalign.config import validate
    from superalign.pipeline import run_pipeline

    start = time.monotonic()
    outcome = run_pipeline(validate(config_data), root=root, log=lambda _: None, pull=False)
    return {"run_dir": str(outcome.run_dir), "ran": outcome.ran, "reused": outcome.reused,
            "seconds": round(time.monotonic() - start, 1)}


def run_sweep(stage: str, cells: list[Cell], root: str | Path, backend: str = "ray", address: str | None = None,
              parallel: int | None = None, cpus_per_run: float | None = None, gpus_per_run: float = 0,
              progress: Progress | None = None, log: Callable[[str], None] = print, pull: bool = True) -> SweepOutcome:
    """Run the cells that have not finished, then summarize every cell over seeds.

    ``backend``: ``ray`` (a local Ray instance, or the cluster at ``address``) or ``local`` (one after another
    in this process). ``parallel``: cells at once (default: as many as the Ray cluster's CPUs allow).
    ``cpus_per_run``: CPUs a cell reserves (default: this machine's, at most 8: torch uses that many threads).
    """
    import os

    from superalign.pipeline import finished, prepare_inputs
    from superalign.runs import write_json_atomic

    root = Path(root)
    progress = progress or NullProgress()
    for cell in cells:  # every cell's inputs checked (and missing models pulled) before any work
        prepare_inputs(cell.config, log, pull)
    folder = folder_for(root, stage, cells)
    outcome = SweepOutcome(folder, cells)
    todo = []
    for cell in cells:
        (outcome.skipped if finished(cell.config, root) else todo).append(cell)
    write_json_atomic(folder / "sweep.json", _manifest(stage, cells, {}))
    log(f"sweep {folder.name}: {len(cells)} runs, {len(outcome.skipped)} finished already, {len(todo)} to run")
    advance = progress.task(f"sweep {stage}", len(todo)) if todo else (lambda n=1: None)
    runner = _run_local if backend == "local" else _run_ray
    cpus = cpus_per_run or float(min(os.cpu_count() or 1, 8))
    for cell, result in runner(todo, root, address, parallel, cpus, gpus_per_run):
        if isinstance(result, BaseException):
            outcome.failed[cell.label] = _first_line(result)
            (folder / "errors").mkdir(parents=True, exist_ok=True)
            (folder / "errors" / f"{cell.run_dir.name}.txt").write_text(
                "".join(traceback.format_exception(result)), encoding="utf-8")
            log(f"failed: {cell.label}: {outcome.failed[cell.label]}")
        else:
            outcome.ran.append(cell)
            log(f"finished: {cell.label} in {result['seconds']} s ({cell.run_dir.name})")
        advance(1)
    outcome.rows = summarize(stage, [c for c in cells if c.label not in outcome.failed])
    write_json_atomic(folder / "sweep.json", _manifest(stage, cells, outcome.failed))
    write_json_atomic(folder / "summary.json", outcome.rows)
    _across_pages(folder, [c for c in cells if c.label not in outcome.failed])
    return outcome


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "cause", None) or err).strip().splitlines()
    return text[-1] if text else type(err).__name__


def _manifest(stage: str, cells: list[Cell], failed: dict[str, str]) -> dict:
    return {"stage": stage, "cells": [{"point": c.point, "seed": c.seed, "run_dir": str(c.run_dir),
                                       "failed": failed.get(c.label)} for c in cells]}


def _run_local(cells, root, address, parallel, cpus, gpus):
    for cell in cells:
        try:
            yield cell, run_cell(cell.config.model_dump(mode="json"), str(root))
        except Exception as err:  # noqa: BLE001 - one failed cell does not stop the others
            yield cell, err


def _run_ray(cells, root, address, parallel, cpus, gpus):
    """Submit the cells as Ray tasks, at most ``parallel`` in flight, and yield them as they finish."""
    import ray

    if not cells:
        return
    started_here = not ray.is_initialized()
    if started_here:
        # A local instance by default; the dashboard and the log forwarding are noise for a sweep.
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 **({} if address else {"object_store_memory": 100 * 1024 * 1024}))
    try:
        remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(run_cell)
        limit = parallel or max(1, int(ray.cluster_resources().get("CPU", 1) // max(cpus, 1)))
        pending = list(cells)
        running: dict = {}
        while pending or running:
            while pending and len(running) < limit:
                cell = pending.pop(0)
                running[remote.remote(cell.config.model_dump(mode="json"), str(root))] = cell
            done, _ = ray.wait(list(running), num_returns=1)
            cell = running.pop(done[0])
            try:
                yield cell, ray.get(done[0])
            except Exception as err:  # noqa: BLE001 - ray.exceptions.RayTaskError wraps the cell's error
                yield cell, err
    finally:
        if started_here:
            ray.shutdown()


# --- the summary over seeds ------------------------------------------------------------------------------------


def summarize(stage: str, cells: list[Cell]) -> list[dict]:
    """One row per (grid point, metric of ``stage``): mean over seeds, 95% t-interval, a bootstrap interval
    (seeds resampled; from :data:`MIN_BOOTSTRAP_SEEDS` seeds), and the per-seed values."""
    from superalign.records import Metric, read_jsonl
    from superalign.report.glossary import base_name, is_rate
    from superalign.runs import metrics_table
    from superalign.stats import Interval, bootstrap_of_means, finite_or_none, mean_ci_over_seeds

    rows = []
    points: dict[str, list[Cell]] = {}
    for cell in cells:
        points.setdefault(point_label(cell.point), []).append(cell)
    for label, members in points.items():
        per_metric: dict[str, dict[int, float]] = {}
        flags: dict[str, object] = {}  # the technique's meta["rate"] of each metric name
        for cell in members:
            path = cell.run_dir / "metrics.jsonl"
            if not path.is_file():
                continue
            metrics = [m for m in read_jsonl(path, Metric) if m.stage == stage]
            flags.update((m.name, m.meta.get("rate")) for m in metrics)
            for name, entry in metrics_table(metrics).get(stage, {}).items():
                per_metric.setdefault(name, {})[cell.seed] = entry["value"]
        for name, by_seed in per_metric.items():
            values = [by_seed[s] for s in sorted(by_seed)]
            t = mean_ci_over_seeds(values)
            rate = is_rate(name, values, flags.get(base_name(name)))
            if rate and t.n >= 2 and t.low == t.low:  # (NaN bounds stay NaN: no interval below 3 seeds)
                t = Interval(t.value, max(0.0, t.low), min(1.0, t.high), t.n)  # a rate's interval stays in [0, 1]
            boot = bootstrap_of_means([values]) if len(values) >= MIN_BOOTSTRAP_SEEDS else None
            rows.append({"point": label, "grid": members[0].point, "metric": name, "n": len(values),
                         "mean": t.value, "t_low": finite_or_none(t.low), "t_high": finite_or_none(t.high),
                         "boot_low": finite_or_none(boot.low) if boot else None, "boot_high": finite_or_none(boot.high) if boot else None,
                         "seeds": sorted(by_seed), "values": values})
    return rows


def headline(rows: list[dict]) -> list[dict]:
    """The rows a person reads first (gains, PGRs, AUROCs); all rows when none of them is a headline."""
    from superalign.report.glossary import is_headline

    chosen = [r for r in rows if is_headline(r["metric"])]
    return chosen or rows


def _across_pages(folder: Path, cells: list[Cell]) -> None:
    """The across-seeds page of each grid point (every metric, per seed and over seeds)."""
    from superalign.report.across import load_runs, render_across

    points: dict[str, list[Cell]] = {}
    for cell in cells:
        if (cell.run_dir / "results.json").is_file():
            points.setdefault(point_label(cell.point), []).append(cell)
    for i, members in enumerate(points.values()):
        if len(members) >= 2:
            render_across(load_runs([c.run_dir for c in members]), folder / f"point-{i}.html")


__all__ = ["Cell", "SweepError", "SweepOutcome", "grid_points", "headline", "parse_grid", "plan", "run_cell",
           "run_sweep", "summarize"]
