"""Matplotlib charts rendered to inline SVG strings for the HTML report.

No pyplot: figures are built with ``matplotlib.figure.Figure`` and the SVG canvas, so rendering never
touches global backend state (and needs no display). Text stays text (``svg.fonttype: none``), which
keeps files small and lets the page's font render the labels.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "superalign",  # deterministic ids: the same run renders the same bytes
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#888888",
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "xtick.color": "#444444",
    "ytick.color": "#444444",
}
_PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]
STRICT_COLOR, LOOSE_COLOR = "#4C72B0", "#A1C4E8"


@dataclass(frozen=True)
class Bar:
    """One bar: a label, a value in [0, 1] and an optional interval."""

    label: str
    value: float
    low: float | None = None
    high: float | None = None


def _to_svg(fig: Figure) -> str:
    """Serialize a figure to an inline ``<svg>`` element with page-unique ids and no external URLs."""
    FigureCanvasSVG(fig)
    buf = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML declaration and DOCTYPE (which names a w3.org URL)
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    # Namespace declarations are URLs too; the HTML parser puts inline <svg> in the SVG namespace anyway.
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    # Several SVGs share one page: prefix ids so clip paths and markers never resolve across figures.
    # The prefix hashes the figure itself, so renders stay byte-for-byte reproducible; two identical
    # figures get identical ids, which is harmless because their definitions are identical too.
    prefix = "f" + hashlib.sha1(svg.encode("utf-8")).hexdigest()[:8] + "-"
    svg = re.sub(r'(\bid="|url\(#|href="#)([^")]+)', lambda m: m.group(1) + prefix + m.group(2), svg)
    return svg.strip()


def _xerr(bars: list[Bar]) -> list[list[float]] | None:
    if not any(b.low is not None and b.high is not None for b in bars):
        return None
    lows, highs = [], []
    for b in bars:
        if b.low is None or b.high is None:
            lows.append(0.0)
            highs.append(0.0)
        else:
            lows.append(max(0.0, b.value - b.low))
            highs.append(max(0.0, b.high - b.value))
    return [lows, highs]


def rate_bars_svg(groups: dict[str, list[Bar]]) -> str:
    """Horizontal bars with 95% error bars, one panel per metric group (e.g. ``instruction``, ``fact``)."""
    with matplotlib.rc_context(_RC):
        heights = [max(1, len(bars)) for bars in groups.values()]
        fig = Figure(figsize=(7.0, 0.6 * len(groups) + 0.28 * sum(heights)))
        axes = fig.subplots(len(groups), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
        for i, (ax, (group, bars)) in enumerate(zip(axes, groups.items())):
            color = _PALETTE[i % len(_PALETTE)]
            y = list(range(len(bars)))
            ax.barh(
                y,
                [b.value for b in bars],
                xerr=_xerr(bars),
                color=color,
                height=0.65,
                error_kw={"ecolor": "#222222", "elinewidth": 1, "capsize": 3},
            )
            for yi, b in zip(y, bars):
                right = max(b.value, b.high if b.high is not None else b.value)  # clear of the error bar
                ax.text(min(right, 1.0) + 0.015, yi, f"{b.value:.3f}", va="center", ha="left",
                        fontsize=8, color="#333333")  # fmt: skip
            ax.set_yticks(y, [b.label for b in bars])
            ax.invert_yaxis()
            ax.set_xlim(0, 1.08)
            ax.set_title(group, loc="left")
            ax.grid(axis="x", color="#dddddd", linewidth=0.6)
            ax.set_axisbelow(True)
        axes[-1].set_xlabel("value (bars: 95% interval)")
        fig.tight_layout()
        return _to_svg(fig)


def strict_loose_svg(labels: list[str], strict: list[float], loose: list[float], title: str) -> str:
    """Per-constraint accuracy, strict and loose bars side by side."""
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(7.0, 0.8 + 0.38 * max(1, len(labels))))
        ax = fig.subplots()
        y = list(range(len(labels)))
        ax.barh([v - 0.19 for v in y], strict, height=0.38, color=STRICT_COLOR, label="strict")
        ax.barh([v + 0.19 for v in y], loose, height=0.38, color=LOOSE_COLOR, label="loose")
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.0)
        ax.set_xlabel("fraction of prompts where the constraint passed")
        ax.set_title(title, loc="left")
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
        fig.tight_layout()
        return _to_svg(fig)


def interval_bars_svg(bars: list[Bar], title: str, xlabel: str) -> str:
    """Horizontal bars with 95% intervals on any scale, with a zero line (e.g. gains over a baseline)."""
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(7.0, 0.9 + 0.32 * max(1, len(bars))))
        ax = fig.subplots()
        y = list(range(len(bars)))
        colors = [_PALETTE[i % len(_PALETTE)] for i in y]
        ax.barh(y, [b.value for b in bars], xerr=_xerr(bars), color=colors, height=0.6,
                error_kw={"ecolor": "#222222", "elinewidth": 1, "capsize": 3})
        ax.axvline(0.0, color="#444444", linewidth=0.8)
        ax.set_yticks(y, [b.label for b in bars])
        ax.invert_yaxis()
        ax.set_title(title, loc="left")
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        fig.tight_layout()
        return _to_svg(fig)


@dataclass(frozen=True)
class Curve:
    """One method's over-optimization points and, optionally, its fitted Gao et al. (2022) form."""

    method: str
    d: list[float]  # sqrt(KL) of each point
    gold: list[float]
    proxy: list[float]
    gold_low: list[float | None]
    gold_high: list[float | None]
    fit: dict | None = None  # {"form": "best_of_n"|"rl", "alpha", "beta", "gold0"}


def _fitted(form: str, alpha: float, beta: float, d):
    import numpy as np

    d = np.asarray(d, dtype=float)
    if form == "rl":
        return d * (alpha - beta * np.log(np.maximum(d, 1e-9)))
    return d * (alpha - beta * d)


def overoptimization_svg(curves: list[Curve]) -> str:
    """Gold (left) and proxy (right) reward against d = sqrt(KL), fitted gold curves dashed."""
    import numpy as np

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(7.4, 3.2))
        gold_ax, proxy_ax = fig.subplots(1, 2)
        for i, c in enumerate(curves):
            color = _PALETTE[i % len(_PALETTE)]
            lows = [g - lo if lo is not None else 0.0 for g, lo in zip(c.gold, c.gold_low)]
            highs = [hi - g if hi is not None else 0.0 for g, hi in zip(c.gold, c.gold_high)]
            gold_ax.errorbar(c.d, c.gold, yerr=[lows, highs], fmt="o", color=color, label=c.method,
                             markersize=4, elinewidth=0.8, capsize=2)
            proxy_ax.plot(c.d, c.proxy, "o-", color=color, label=c.method, markersize=4)
            if c.fit and c.d:
                grid = np.linspace(0.0, max(c.d) * 1.05, 60)
                curve = c.fit["gold0"] + _fitted(c.fit["form"], c.fit["alpha"], c.fit["beta"], grid)
                gold_ax.plot(grid, curve, "--", color=color, linewidth=1)
            best = int(np.argmax(c.gold)) if c.gold else None
            if best is not None:
                gold_ax.plot([c.d[best]], [c.gold[best]], marker="*", color=color, markersize=11)
        gold_ax.set_title("gold reward (human stand-in)", loc="left")
        proxy_ax.set_title("proxy reward (reward model)", loc="left")
        for ax in (gold_ax, proxy_ax):
            ax.set_xlabel("d = sqrt(KL to the starting policy)")
            ax.grid(color="#eeeeee", linewidth=0.6)
        proxy_ax.legend(frameon=False, fontsize=8)
        fig.tight_layout()
        return _to_svg(fig)


@dataclass(frozen=True)
class W2SPoint:
    """One model's test score in a weak-to-strong panel: x is its weak supervisor's score (mean over seeds)."""

    label: str  # "weak", "ceiling", or the student's method
    weak: float
    value: float
    low: float | None = None
    high: float | None = None


def w2s_svg(panels: dict[str, list[W2SPoint]], metric: str = "test accuracy") -> str:
    """Student performance against weak-supervisor performance, one panel per task (Burns et al. 2023, Fig. 3).

    The dashed diagonal is "the student only matches its supervisor" (PGR = 0); the ceiling (star) is
    PGR = 1. Bars: 95% intervals over seeds.
    """
    with matplotlib.rc_context(_RC):
        n = max(1, len(panels))
        cols = min(n, 4)
        rows = (n + cols - 1) // cols
        fig = Figure(figsize=(1.9 * cols + 0.9, 2.2 * rows + 0.4))
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        labels = list(dict.fromkeys(p.label for pts in panels.values() for p in pts
                                    if p.label not in ("weak", "ceiling")))
        colors = {label: _PALETTE[i % len(_PALETTE)] for i, label in enumerate(labels)}
        for ax, (task, points) in zip(axes, panels.items()):
            values = [p.value for p in points] + [p.weak for p in points]
            lo, hi = min(values + [0.5]) - 0.03, min(1.0, max(values) + 0.03)
            ax.plot([lo, hi], [lo, hi], "--", color="#999999", linewidth=0.8)
            for p in points:
                err = None
                if p.low is not None and p.high is not None:
                    err = [[max(0.0, p.value - p.low)], [max(0.0, p.high - p.value)]]
                if p.label == "ceiling":
                    ax.errorbar([p.weak], [p.value], yerr=err, fmt="*", color="#222222", markersize=9,
                                elinewidth=0.8, capsize=2, label="ceiling")
                elif p.label != "weak":
                    # methods side by side around their supervisor's x, so that their bars do not overlap
                    shift = (labels.index(p.label) - (len(labels) - 1) / 2) * 0.012 * (hi - lo)
                    ax.errorbar([p.weak + shift], [p.value], yerr=err, fmt="o", color=colors[p.label],
                                markersize=4, elinewidth=0.8, capsize=2, label=p.label)
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_title(task, loc="left")
            ax.grid(color="#eeeeee", linewidth=0.6)
            ax.set_xlabel(f"weak supervisor {metric}", fontsize=8)
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        axes[0].set_ylabel(f"{metric}", fontsize=8)
        handles, names = axes[0].get_legend_handles_labels()
        unique = dict(zip(names, handles))
        fig.legend(list(unique.values()), list(unique.keys()), loc="upper center", ncol=len(unique), frameon=False,
                   fontsize=8, bbox_to_anchor=(0.5, 1.02))
        fig.tight_layout(rect=(0, 0, 1, 0.93))
        return _to_svg(fig)


@dataclass(frozen=True)
class Series:
    """One line of a categorical plot: a value (with an optional interval) at each x label."""

    label: str
    values: list[float]
    low: list[float | None]
    high: list[float | None]


def category_lines_svg(xlabels: list[str], series: list[Series], baselines: dict[str, float], title: str,
                       xlabel: str, ylabel: str) -> str:
    """Lines over ordered categories (e.g. debater setups from weak to strong) with 95% intervals, and
    dashed horizontal baselines (e.g. the naive judge), on a [0, 1] scale."""
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(7.0, 3.4))
        ax = fig.subplots()
        x = list(range(len(xlabels)))
        for i, s in enumerate(series):
            color = _PALETTE[i % len(_PALETTE)]
            errs = [[max(0.0, v - lo) if lo is not None else 0.0 for v, lo in zip(s.values, s.low)],
                    [max(0.0, hi - v) if hi is not None else 0.0 for v, hi in zip(s.values, s.high)]]
            offset = (i - (len(series) - 1) / 2) * 0.04  # side by side, so that intervals do not hide each other
            ax.errorbar([xi + offset for xi in x], s.values, yerr=errs, color=color, marker="o", capsize=3,
                        linewidth=1.4, label=s.label)
        for j, (label, value) in enumerate(baselines.items()):
            ax.axhline(value, color=_PALETTE[(len(series) + j) % len(_PALETTE)], linestyle="--", linewidth=1,
                       label=label)
        ax.set_xticks(x, xlabels)
        ax.set_ylim(0, 1.05)
        ax.set_title(title, loc="left")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", color="#dddddd", linewidth=0.6)
        ax.legend(fontsize=7, frameon=False, loc="lower right")
        fig.tight_layout()
        return _to_svg(fig)
