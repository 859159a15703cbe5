"""How long a run took, stage by stage: the table `superalign run` prints at its end and the report shows on top.

Read from the finished stages' files (``stages/<name>.json``: seconds, peak memory, and for a stage that reports
its time in parts, such as the stress stage's zoo and audit, ``results.seconds``). A stage reused from the cache
shows the time it took when it was computed.
"""

from __future__ import annotations

import json
from pathlib import Path


def duration(seconds: float) -> str:
    """``42.0 s``, ``3.4 min`` or ``1 h 12 min``: one way to say a time everywhere."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes} min"


def read_infos(run_dir: str | Path, stages: list[str]) -> dict[str, dict | None]:
    """``stages/<name>.json`` of each stage, parsed (None where the stage has not finished)."""
    out: dict[str, dict | None] = {}
    for name in stages:
        try:
            out[name] = json.loads((Path(run_dir) / "stages" / f"{name}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            out[name] = None
    return out


def time_rows(infos: dict[str, dict | None]) -> list[dict]:
    """One row per finished stage that says its time (stage, seconds, time, peak, parts), then a total row."""
    rows = []
    for name, info in infos.items():
        if not info or info.get("seconds") is None:
            continue
        parts = ((info.get("results") or {}).get("seconds")) or {}
        rows.append({"stage": name, "seconds": float(info["seconds"]), "time": duration(float(info["seconds"])),
                     "peak": _gb(info.get("peak_rss_gb")),
                     "parts": ", ".join(f"{part} {duration(float(s))}" for part, s in parts.items())
                     if isinstance(parts, dict) else ""})
    if len(rows) > 1:
        total = sum(r["seconds"] for r in rows)
        peaks = [info.get("peak_rss_gb") for info in infos.values() if info and info.get("peak_rss_gb")]
        rows.append({"stage": "total", "seconds": total, "time": duration(total),
                     "peak": _gb(max(peaks)) if peaks else "", "parts": ""})
    return rows


def _gb(value) -> str:
    return f"{float(value):.1f} GB" if value else ""


__all__ = ["duration", "read_infos", "time_rows"]
