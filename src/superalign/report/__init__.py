"""The HTML report: rendered from a run directory's records alone (no torch, no model)."""

from superalign.report.html import load_run, render_report

__all__ = ["load_run", "render_report"]
