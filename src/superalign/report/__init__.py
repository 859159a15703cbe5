"""The HTML report: rendered from a run directory's records alone (Jinja2 templates, one section per stage; no torch)."""

from superalign.report.data import load_run
from superalign.report.html import render_report

__all__ = ["load_run", "render_report"]
