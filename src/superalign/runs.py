"""Run directories: one folder per (name, config), so finished work is found again and skipped.

Layout of ``root/f"{name}-{hash8}"``::

    config.json          the full config, its hash and the superalign version that created the run
    stages/<stage>.json  written atomically when a stage finishes: its results, cache key and a timestamp
    metrics.jsonl        superalign.records.Metric, one per line
    records/<stage>.jsonl  the stage's records (Evaluation, Preference, Judgement, ...)
    results.json         summary of every stage (see :meth:`Run.write_results`)

Everything the report shows is read back from these files; nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from superalign import __version__
from superalign.records import Metric, read_jsonl, write_jsonl

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def _check_name(kind: str, name: str) -> str:
    # Names become file and directory names: refuse anything that could escape the run directory.
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or len(name) > 100:
        raise ValueError(
            f"{kind} name {name!r} is not allowed: use letters, digits, '_', '-' and '.' "
            "(not first), at most 100 characters"
        )
    return name


def _config_dump(config: BaseModel | dict) -> dict:
    if isinstance(config, BaseModel):
        return config.model_dump(mode="json")
    if isinstance(config, dict):
        return json.loads(json.dumps(config, default=to_jsonable))
    raise TypeError(f"config must be a pydantic model or a dict, got {type(config).__name__}")


def _canonical_json(data: Any) -> str:
    # Sorted keys and fixed separators: the same config always gives the same bytes.
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def config_hash(config: BaseModel | dict) -> str:
    """First 8 hex digits of the sha256 of the config's canonical JSON (``model_dump(mode="json")``)."""
    return hashlib.sha256(_canonical_json(_config_dump(config)).encode("utf-8")).hexdigest()[:8]


def to_jsonable(obj: Any) -> Any:
    """``json.dumps`` fallback for the values stage results usually hold."""
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy scalars and arrays (no numpy import needed)
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON via a temp file and a rename: a crash never leaves a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: two runs may finish the same step
    tmp.write_text(json.dumps(data, indent=2, default=to_jsonable) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # atomic rename: readers see the old file or the whole new one


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Run:
    """A run directory. Create or reopen one with :meth:`Run.open`."""

    def __init__(self, path: Path, name: str, config_hash: str, config: dict):
        self.path = Path(path)
        self.name = name
        self.config_hash = config_hash
        self.config = config  # the JSON dump of the config, as saved in config.json

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @classmethod
    def open(cls, root: str | os.PathLike, name: str, config: BaseModel | dict) -> Run:
        """Open ``root/f"{name}-{hash8}"``, creating it and its ``config.json`` the first time.

        The same config always maps to the same directory, so a rerun finds its finished stages.
        """
        _check_name("run", name)
        dump = _config_dump(config)
        digest = config_hash(config)
        path = Path(root) / f"{name}-{digest}"
        config_file = path / "config.json"
        if config_file.exists():
            saved = json.loads(config_file.read_text(encoding="utf-8"))
            if _canonical_json(saved.get("config")) != _canonical_json(dump):
                # Only an 8-hex-digit hash collision (or a hand-edited file) gets here.
                raise RuntimeError(
                    f"{config_file} holds a different config with the same hash {digest}; "
                    "use another run name or move that directory away"
                )
        else:
            path.mkdir(parents=True, exist_ok=True)
            write_json_atomic(
                config_file,
                {
                    "name": name,
                    "config_hash": digest,
                    "superalign_version": __version__,
                    "created_at": _now(),
                    "config": dump,
                },
            )
        return cls(path, name, digest, dump)

    # --- stages -----------------------------------------------------------------------------------

    def stage_path(self, stage: str) -> Path:
        return self.path / "stages" / f"{_check_name('stage', stage)}.json"

    def stage_done(self, stage: str, key: str | None = None) -> bool:
        """True only when the stage's finished marker exists and parses (a torn write is not done) and,
        when ``key`` is given, was written for that cache key (see :mod:`superalign.pipeline`)."""
        try:
            data = json.loads(self.stage_path(stage).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        finished = isinstance(data, dict) and data.get("stage") == stage and "results" in data
        return finished and (key is None or data.get("key") == key)

    def mark_done(self, stage: str, results: dict, key: str | None = None, seconds: float | None = None,
                  peak_rss_gb: float | None = None, machine: str | None = None) -> None:
        """Write ``stages/<stage>.json`` atomically with ``results``, its cache key, a UTC timestamp, how
        long the stage took, the run's peak memory when it finished, and the machine it ran on (device, ISA,
        threads, precision: greedy answers can differ between machines that round differently)."""
        if not isinstance(results, dict):
            raise TypeError(f"results must be a dict, got {type(results).__name__}")
        write_json_atomic(
            self.stage_path(stage),
            {
                "stage": stage,
                "config_hash": self.config_hash,
                "key": key,
                "finished_at": _now(),
                "seconds": seconds,
                "peak_rss_gb": peak_rss_gb,
                "machine": machine,
                "results": results,
            },
        )

    def work_dir(self, stage: str) -> Path:
        """Where an unfinished stage keeps checkpoints and finished steps, to resume after an interruption."""
        return self.path / "work" / _check_name("stage", stage)

    def stage_results(self, stage: str) -> dict | None:
        """The results a finished stage saved, or None when it has not finished."""
        if not self.stage_done(stage):
            return None
        return json.loads(self.stage_path(stage).read_text(encoding="utf-8"))["results"]

    def finished_stages(self) -> list[str]:
        """Finished stages in the order they finished."""
        return [s["stage"] for s in _read_stage_files(self.path)]

    # --- metrics and records ----------------------------------------------------------------------

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def log_metrics(self, metrics: list[Metric]) -> None:
        """Append metrics to ``metrics.jsonl`` (use :meth:`replace_metrics` when rerunning a stage)."""
        write_jsonl(self.metrics_path, _check_metrics(metrics), append=True)

    def replace_metrics(self, stage: str, metrics: list[Metric]) -> None:
        """Replace every earlier metric of ``stage`` with ``metrics``, keeping the stage's position.

        A rerun stage therefore never duplicates its numbers; other stages' metrics are untouched.
        """
        metrics = _check_metrics(metrics)
        wrong = sorted({m.stage for m in metrics if m.stage != stage})
        if wrong:
            raise ValueError(f"replace_metrics({stage!r}) got metrics of other stages: {wrong}")
        kept: list[Metric] = []
        insert_at = None
        for m in self.metrics():
            if m.stage == stage:
                insert_at = len(kept) if insert_at is None else insert_at
            else:
                kept.append(m)
        insert_at = len(kept) if insert_at is None else insert_at
        write_jsonl(self.metrics_path, kept[:insert_at] + metrics + kept[insert_at:])

    def metrics(self) -> list[Metric]:
        """Every metric logged so far (empty list before the first)."""
        if not self.metrics_path.exists():
            return []
        return read_jsonl(self.metrics_path, Metric)

    def records_path(self, stage: str) -> Path:
        """``records/<stage>.jsonl`` (its folder is created, the file is not)."""
        path = self.path / "records" / f"{_check_name('stage', stage)}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    # --- summary ----------------------------------------------------------------------------------

    def write_results(self) -> Path:
        """Write ``results.json``: the config hash, each finished stage's results, and all metrics.

        ``metrics`` is ``{stage: {name: {value, ci_low, ci_high, n, model}}}``. When one stage logs the
        same name for several models the key becomes ``f"{name}@{model}"``; a name logged twice for
        the same model keeps the latest value.
        """
        stages = {
            s["stage"]: {"finished_at": s.get("finished_at"), "results": s["results"]}
            for s in _read_stage_files(self.path)
        }
        data = {
            "name": self.name,
            "config_hash": self.config_hash,
            "superalign_version": __version__,
            "written_at": _now(),
            "stages": stages,
            "metrics": metrics_table(self.metrics()),
        }
        path = self.path / "results.json"
        write_json_atomic(path, data)
        return path


def _check_metrics(metrics) -> list[Metric]:
    metrics = list(metrics)
    for m in metrics:
        if not isinstance(m, Metric):
            raise TypeError(f"expected superalign.records.Metric, got {type(m).__name__}")
        if not math.isfinite(m.value):
            # JSON has no NaN: the record would be written as null and metrics.jsonl would no longer
            # parse. Refuse here, where the message can name the culprit.
            raise ValueError(f"metric {m.stage}/{m.name} has a non-finite value {m.value}; leave it out")
    return metrics


def _read_stage_files(run_dir: Path) -> list[dict]:
    """Every valid ``stages/*.json``, oldest first (torn or foreign files are skipped)."""
    found = []
    for path in sorted((Path(run_dir) / "stages").glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("stage") == path.stem and "results" in data:
            found.append(data)
    return sorted(found, key=lambda d: str(d.get("finished_at", "")))


def metrics_table(metrics: list[Metric]) -> dict[str, dict[str, dict]]:
    """``{stage: {name: {value, ci_low, ci_high, n, model}}}`` (see :meth:`Run.write_results`)."""
    models_per_name: dict[tuple[str, str], set] = {}
    for m in metrics:
        models_per_name.setdefault((m.stage, m.name), set()).add(m.model)
    table: dict[str, dict[str, dict]] = {}
    for m in metrics:
        key = m.name if len(models_per_name[(m.stage, m.name)]) == 1 else f"{m.name}@{m.model}"
        table.setdefault(m.stage, {})[key] = {
            "value": m.value,
            "ci_low": m.ci_low,
            "ci_high": m.ci_high,
            "n": m.n,
            "model": m.model,
        }
    return table


def load_results(run_dir: str | os.PathLike) -> dict:
    """Read ``results.json`` of a run directory (written by :meth:`Run.write_results`)."""
    path = Path(run_dir) / "results.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: the run has not written its results yet")
    return json.loads(path.read_text(encoding="utf-8"))
