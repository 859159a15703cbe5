"""Several runs side by side (typically one per seed): each metric per run, and its mean with a 95% interval over
the runs. ``superalign report RUN_DIR RUN_DIR RUN_DIR`` writes it. Reads metrics only (no torch)."""

from __future__ import annotations

import math
import os
from pathlib import Path


from superalign import __version__
from superalign.records import Metric
from superalign.report.data import RunData, load_run
from superalign.report.glossary import describe, is_headline, is_rate
from superalign.report.html import _environment, fmt, fmt_interval


def _is_rate(metrics: list[Metric]) -> bool:
    """A rate stays in [0, 1] (its interval too); the runs' own flag decides when they agree on one."""
    flags = {m.meta.get("rate") for m in metrics}
    return is_rate(metrics[0].name, [m.value for m in metrics], flags.pop() if len(flags) == 1 else None)


def metric_row(stage: str, name: str, per_run: list[Metric]) -> dict:
    """One metric across runs: each run's value (and interval), the mean over runs with its interval."""
    from superalign.stats import bootstrap_of_means, mean_ci_over_seeds

    values = [m.value for m in per_run]
    rate = _is_rate(per_run)
    ci = bootstrap_of_means([values]) if rate else mean_ci_over_seeds(values)
    count = name.endswith(".labels")
    cells = [(f"{int(m.value):,}" if count else fmt(m.value),
              "" if fmt_interval(m.ci_low, m.ci_high) == "—" else fmt_interval(m.ci_low, m.ci_high)) for m in per_run]
    excluding = sum(1 for m in per_run if m.ci_low is not None and m.ci_high is not None
                    and (m.ci_low > 0 or m.ci_high < 0))
    judged = sum(1 for m in per_run if m.ci_low is not None and m.ci_high is not None)
    interval = fmt_interval(ci.low, ci.high)
    return {"stage": stage, "name": name, "about": describe(name), "cells": cells,
            "mean": f"{ci.value:,.0f}" if count else fmt(ci.value),
            "interval": "" if count else interval if interval != "—" else f"no interval ({len(values)} runs)",
            "low": ci.low, "high": ci.high, "value": ci.value,
            # "excludes 0" is a claim about differences (gains, taxes, PGRs); a rate's own reference differs
            "excluding": f"{excluding} of {judged}" if judged and not count and not rate else "—"}


def across_rows(runs: list[RunData]) -> list[dict]:
    """Rows for every (stage, metric) that all runs have, in the first run's order."""
    tables = [{(st.name, m.name): m for st in run.stages.values() for m in st.metrics} for run in runs]
    common = [key for key in tables[0] if all(key in t for t in tables[1:])]
    return [metric_row(stage, name, [t[(stage, name)] for t in tables]) for stage, name in common]


def _seed(run: RunData) -> str:
    seed = (run.config or {}).get("seed")
    return str(seed) if seed is not None else "?"


def build_across_html(runs: list[RunData], rows: list[dict]) -> str:
    """The page, from the runs and their :func:`across_rows`."""
    headline = headline_rows(rows)
    rest = [r for r in rows if not any(r is h for h in headline)]  # a headline metric without a value is listed here
    seeds = [_seed(r) for r in runs]
    warnings = [f"seed {s} appears {seeds.count(s)} times: the runs are not independent draws"
                for s in sorted(set(seeds)) if seeds.count(s) > 1]
    if not rows:
        warnings.append("the runs share no metric (different stages or configs?)")
    groups = [g for g in ({"title": "Gains, costs and PGRs", "rows": headline}, {"title": "Every metric", "rows": rest})
              if g["rows"]]
    return _environment().get_template("across.html.j2").render(
        title=f"superalign across {len(runs)} runs", runs=[{"name": r.name, "seed": _seed(r)} for r in runs],
        groups=groups, warnings=warnings, version=__version__)


def load_runs(run_dirs: list[str | os.PathLike]) -> list[RunData]:
    return [load_run(d) for d in run_dirs]


def render_across(runs: list[RunData], out: str | os.PathLike | None = None,
                  rows: list[dict] | None = None) -> Path:
    """Write the across-runs page (default: ``across-seeds-<seeds>.html`` beside the first run) and return its
    path. ``rows``: the runs' :func:`across_rows`, when the caller has them already."""
    rows = across_rows(runs) if rows is None else rows
    if out is None:
        out = runs[0].path.resolve().parent / f"across-seeds-{'-'.join(_seed(r) for r in runs)}.html"
    out = Path(out)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(build_across_html(runs, rows), encoding="utf-8")
    os.replace(tmp, out)
    return out


def headline_rows(rows: list[dict]) -> list[dict]:
    """The gains, costs and PGRs among ``rows`` (those with a value), for the page and a terminal table."""
    return [r for r in rows if is_headline(r["name"]) and not math.isnan(r["value"])]
