"""Render a run directory to one self-contained HTML page, from its records alone.

Reads ``config.json``, ``metrics.jsonl``, ``stages/*.json`` and ``records/*.jsonl`` — never a model,
never torch. The page has inline CSS and inline SVG charts, no script and no external resource, so it
opens offline and can be mailed around. Every string from the run is escaped: responses are untrusted
model output.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from superalign import __version__
from superalign.records import (
    Evaluation,
    Judgement,
    Metric,
    OptimizationPoint,
    Preference,
    RecordFileError,
    iter_jsonl,
)
from superalign.report import plots
from superalign.stats import bootstrap_ci

# Known stages come first, in pipeline order; any other stage follows in order of appearance.
PIPELINE_ORDER = ["baseline", "train", "assist", "generalize", "validate", "stress"]
# Last name parts that are never rates even when their value happens to lie in [0, 1].
_NOT_RATES = {"kl", "loss", "pgr", "length", "tokens", "count", "seconds", "time", "entropy", "steps"}
EXAMPLES_PER_GROUP = 5
MAX_TEXT = 4000  # characters of a prompt or response shown before truncating


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


# --- reading ---------------------------------------------------------------------------------------


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
            elif isinstance(rec, Preference):
                stage(path.stem).preferences.append(rec)
            elif isinstance(rec, Judgement):
                stage(path.stem).judgements.append(rec)
            elif isinstance(rec, OptimizationPoint):
                stage(path.stem).points.append(rec)
            elif isinstance(rec, Metric) and (rec.stage, rec.name, rec.model) not in seen_metrics:
                stage(rec.stage).metrics.append(rec)  # metrics.jsonl wins over a copy in records

    known = [s for s in PIPELINE_ORDER if s in stages]
    ordered = known + [s for s in stages if s not in known]
    return RunData(
        path=run_dir,
        name=str(config_doc.get("name") or run_dir.name),
        config_hash=str(config_doc.get("config_hash") or ""),
        config=config_doc.get("config"),
        version=config_doc.get("superalign_version"),
        stages={s: stages[s] for s in ordered},
        warnings=warnings,
    )


# --- formatting helpers ----------------------------------------------------------------------------


def esc(x: Any) -> str:
    """HTML-escape anything (quotes included, so it is safe in attributes too)."""
    return html.escape(str(x), quote=True)


def fmt(v: float | None) -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and math.isnan(v):
        return "n/a"
    if v != 0 and (abs(v) >= 1000 or abs(v) < 0.001):
        return f"{v:.3g}"
    return f"{v:.3f}"


def fmt_interval(low: float | None, high: float | None) -> str:
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return "—"
    return f"[{fmt(low)}, {fmt(high)}]"


def _anchor(name: str) -> str:
    return "stage-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)


def _truncate(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit} more characters)"


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    """A table from already-escaped cell HTML; ``numeric`` columns are right-aligned."""
    head = "".join(f'<th{" class=num" if i in numeric else ""}>{h}</th>' for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{c}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(svg: str, caption: str) -> str:
    return f'<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>'


# --- sections --------------------------------------------------------------------------------------


def _is_rate(m: Metric) -> bool:
    flag = m.meta.get("rate") if isinstance(m.meta, dict) else None
    if isinstance(flag, bool):
        return flag  # the technique knows best
    if m.name.rsplit(".", 1)[-1].lower() in _NOT_RATES:
        return False
    in_unit = lambda v: v is None or (0.0 <= v <= 1.0)  # noqa: E731
    return not math.isnan(m.value) and in_unit(m.value) and in_unit(m.ci_low) and in_unit(m.ci_high)


def _metric_label(m: Metric, many_models: bool) -> str:
    return f"{m.name} ({m.model})" if many_models and m.model else m.name


def metrics_section(metrics: list[Metric]) -> str:
    if not metrics:
        return '<p class="muted">No metrics logged for this stage.</p>'
    with_model = any(m.model for m in metrics)
    headers = ["metric"] + (["model"] if with_model else []) + ["value", "95% interval", "n"]
    rows = []
    for m in metrics:
        row = [f"<code>{esc(m.name)}</code>"] + ([esc(m.model or "")] if with_model else [])
        row += [fmt(m.value), fmt_interval(m.ci_low, m.ci_high), esc(m.n if m.n is not None else "—")]
        rows.append(row)
    first_num = 2 if with_model else 1
    out = _table(headers, rows, numeric={first_num, first_num + 1, first_num + 2})

    many_models = len({m.model for m in metrics}) > 1
    groups: dict[str, list[plots.Bar]] = defaultdict(list)
    for m in metrics:
        if _is_rate(m):
            group, _, short = m.name.partition(".") if "." in m.name else ("other", "", m.name)
            label = _metric_label(m.model_copy(update={"name": short}), many_models)
            groups[group].append(plots.Bar(label, m.value, m.ci_low, m.ci_high))
    if groups:
        out += _figure(plots.rate_bars_svg(dict(groups)), "Rates in [0, 1] with their 95% intervals.")
    return out


def _constraint_accuracy(evals: list[Evaluation], mode: str) -> dict[str, list[bool]]:
    per_type: dict[str, list[bool]] = defaultdict(list)
    for ev in evals:
        checks = ev.details.get(mode)
        if isinstance(checks, dict):
            for ctype, ok in checks.items():
                per_type[str(ctype)].append(bool(ok))
    return per_type


def instruction_section(evals: list[Evaluation]) -> str:
    """Per-constraint strict/loose accuracy, one chart per model."""
    out = []
    by_model: dict[str, list[Evaluation]] = defaultdict(list)
    for ev in evals:
        if ev.kind == "instruction":
            by_model[ev.model].append(ev)
    for model, group in by_model.items():
        strict, loose = _constraint_accuracy(group, "strict"), _constraint_accuracy(group, "loose")
        types = sorted(set(strict) | set(loose))
        if not types:
            continue
        acc = lambda d, t: float(np.mean(d[t])) if d.get(t) else 0.0  # noqa: E731
        labels = [f"{t} (n={max(len(strict.get(t, [])), len(loose.get(t, [])))})" for t in types]
        svg = plots.strict_loose_svg(
            labels, [acc(strict, t) for t in types], [acc(loose, t) for t in types], model
        )
        out.append(_figure(svg, f"Per-constraint accuracy of {model}, strict and loose."))
    if not out:
        return ""
    return "<h3>Instruction following by constraint</h3>" + "".join(out)


def evaluation_summary(evals: list[Evaluation]) -> str:
    groups: dict[tuple[str, str], list[Evaluation]] = defaultdict(list)
    for ev in evals:
        groups[(ev.model, ev.kind)].append(ev)
    rows = []
    for (model, kind), group in groups.items():
        gold = bootstrap_ci([ev.gold for ev in group])
        passed = bootstrap_ci([float(ev.passed) for ev in group])
        rows.append([
            esc(model), esc(kind), str(len(group)),
            f"{fmt(passed.value)} {fmt_interval(passed.low, passed.high)}",
            f"{fmt(gold.value)} {fmt_interval(gold.low, gold.high)}",
        ])  # fmt: skip
    return "<h3>Evaluations</h3>" + _table(
        ["model", "kind", "n", "pass rate [95%]", "mean gold [95%]"], rows, numeric={2, 3, 4}
    )


def _messages_html(messages: list[dict]) -> str:
    parts = []
    for msg in messages:
        role = esc(msg.get("role", "?"))
        parts.append(f'<div class="msg"><span class="role">{role}</span>'
                     f'<pre>{esc(_truncate(str(msg.get("content", ""))))}</pre></div>')  # fmt: skip
    return "".join(parts)


def _spread(items: list, k: int) -> list:
    """``k`` items evenly spread over an already-sorted list (lowest, ..., highest)."""
    if len(items) <= k:
        return items
    idx = sorted({round(i * (len(items) - 1) / (k - 1)) for i in range(k)})
    return [items[i] for i in idx]


def examples_section(evals: list[Evaluation]) -> str:
    """A few responses per (model, kind), spread from the lowest to the highest gold score."""
    groups: dict[tuple[str, str], list[Evaluation]] = defaultdict(list)
    for ev in evals:
        groups[(ev.model, ev.kind)].append(ev)
    blocks = []
    for (model, kind), group in groups.items():
        chosen = _spread(sorted(group, key=lambda e: (e.gold, e.task_id)), EXAMPLES_PER_GROUP)
        items = []
        for ev in chosen:
            checks = ev.details.get("strict") if isinstance(ev.details, dict) else None
            check_html = ""
            if isinstance(checks, dict) and checks:
                check_html = '<p class="checks">' + " ".join(
                    f'<span class="{"ok" if ok else "bad"}">{esc(t)}: {"pass" if ok else "fail"}</span>'
                    for t, ok in checks.items()
                ) + "</p>"  # fmt: skip
            status = '<span class="ok">passed</span>' if ev.passed else '<span class="bad">failed</span>'
            items.append(
                f"<details class=example><summary>gold {fmt(ev.gold)} · {status} · "
                f"<code>{esc(ev.task_id)}</code> · {esc(ev.category)}</summary>"
                f"{_messages_html(ev.prompt)}"
                f'<div class="msg"><span class="role">response</span><pre>{esc(_truncate(ev.response))}</pre></div>'
                f"{check_html}</details>"
            )
        blocks.append(
            f"<details><summary>Example responses: {esc(model)}, {esc(kind)} "
            f"({len(chosen)} of {len(group)}, lowest to highest gold)</summary>{''.join(items)}</details>"
        )
    return "<h3>Examples</h3>" + "".join(blocks) if blocks else ""


def preferences_section(prefs: list[Preference]) -> str:
    rows = []
    by_labeler: dict[str, list[Preference]] = defaultdict(list)
    for p in prefs:
        by_labeler[p.labeler].append(p)
    for labeler, group in by_labeler.items():
        conf = [p.confidence for p in group if p.confidence is not None]
        longer = np.mean([len(p.chosen) > len(p.rejected) for p in group])
        rows.append([
            f"<code>{esc(labeler)}</code>", str(len(group)), fmt(float(np.mean([p.tie for p in group]))),
            fmt(float(np.mean(conf))) if conf else "—", fmt(float(longer)),
        ])  # fmt: skip
    table = _table(["labeler", "pairs", "tie rate", "mean confidence", "chosen is longer"], rows, {1, 2, 3, 4})
    examples = "".join(
        f"<details class=example><summary><code>{esc(p.task_id)}</code> · {esc(p.labeler)}</summary>"
        f"{_messages_html(p.prompt)}"
        f'<div class="msg"><span class="role">chosen</span><pre>{esc(_truncate(p.chosen))}</pre></div>'
        f'<div class="msg"><span class="role">rejected</span><pre>{esc(_truncate(p.rejected))}</pre></div>'
        "</details>"
        for p in prefs[:EXAMPLES_PER_GROUP]
    )
    return (f"<h3>Preferences</h3>{table}<details><summary>Example pairs "
            f"({min(len(prefs), EXAMPLES_PER_GROUP)} of {len(prefs)})</summary>{examples}</details>")  # fmt: skip


def judgements_section(judgements: list[Judgement]) -> str:
    groups: dict[tuple[str, str], list[Judgement]] = defaultdict(list)
    for j in judgements:
        groups[(j.judge, j.assisted or "none")].append(j)
    rows = []
    for (judge, assisted), group in groups.items():
        verdicts = Counter(j.verdict for j in group)
        scores = [j.score for j in group if j.score is not None]
        rows.append([
            f"<code>{esc(judge)}</code>", esc(assisted), str(len(group)),
            esc(", ".join(f"{v}: {c}" for v, c in verdicts.most_common(8))),
            fmt(float(np.mean(scores))) if scores else "—",
        ])  # fmt: skip
    return "<h3>Judgements</h3>" + _table(
        ["judge", "assisted", "n", "verdicts", "mean score"], rows, numeric={2, 4}
    )


def policies_section(metrics: list[Metric]) -> str:
    """Before/after: each policy's gold reward and its paired gain over the starting policy.

    Metrics named ``<policy>.gold`` and ``<policy>.gold_gain`` (the train stage writes them).
    """
    gold = [m for m in metrics if m.name.endswith(".gold") and m.name.count(".") == 1]
    gains = [m for m in metrics if m.name.endswith(".gold_gain")]
    if len(gold) < 2:
        return ""
    parts = ["<h3>Policies: before and after</h3>"]
    bars = [plots.Bar(m.name.split(".")[0], m.value, m.ci_low, m.ci_high) for m in gold]
    parts.append(_figure(plots.interval_bars_svg(bars, "held-out gold reward", "mean gold reward (95% interval)"),
                         "Greedy answers to held-out prompts, scored by the world's gold reward."))
    if gains:
        bars = [plots.Bar(m.name.split(".")[0], m.value, m.ci_low, m.ci_high) for m in gains]
        parts.append(_figure(plots.interval_bars_svg(bars, "gold gain over the starting policy", "paired difference"),
                             "Paired over the same prompts; an interval that includes 0 is no effect."))
    return "".join(parts)


def overoptimization_section(points: list[OptimizationPoint], metrics: list[Metric]) -> str:
    """Gold and proxy against d = sqrt(KL) per method, with the fitted forms of Gao et al. (2022)."""
    fits = {m.name.split(".")[1]: m.meta for m in metrics if m.name.startswith("overopt.") and m.name.endswith(".r2")}
    curves, rows = [], []
    for method in dict.fromkeys(p.method for p in points):
        pts = sorted((p for p in points if p.method == method), key=lambda p: p.kl)
        fit = fits.get(method)
        curves.append(plots.Curve(method=method, d=[p.kl ** 0.5 for p in pts], gold=[p.gold for p in pts],
                            proxy=[p.proxy for p in pts], gold_low=[p.gold_ci_low for p in pts],
                            gold_high=[p.gold_ci_high for p in pts],
                            fit={"form": fit["form"], "alpha": fit["alpha"], "beta": fit["beta"],
                                 "gold0": fit["gold0"]} if fit else None))
        if fit:
            peak = fit.get("peak") or {}
            rows.append([esc(method), esc(fit["form"]), fmt(fit["alpha"]), fmt(fit["beta"]), fmt(fit["r2"]),
                         fmt(fit.get("d_peak")), esc(_peak_text(peak))])
    parts = ["<h3>Over-optimization</h3>",
             _figure(plots.overoptimization_svg(curves), "Dashed: fitted gold gain, d(α − βd) for best-of-n and "
                     "d(α − β log d) for RL (Gao, Schulman & Hilton 2022). Star: where gold peaks.")]
    if rows:
        parts.append(_table(["method", "form", "α", "β", "R²", "d at fitted peak", "gold peak"], rows,
                            numeric={2, 3, 4, 5}))
    return "".join(parts)


def _w2s(m: Metric) -> dict:
    meta = m.meta.get("w2s") if isinstance(m.meta, dict) else None
    return meta if isinstance(meta, dict) else {}


def _pgr_cell(m: Metric | None) -> str:
    if m is None:
        return '<span class="muted">undefined</span>'
    return f"{fmt(m.value)} {fmt_interval(m.ci_low, m.ci_high)}"


def _paired_verdict(diffs: list[float], what: str) -> str:
    """'helped' / 'hurt' / 'no significant difference' from per-seed differences (t-interval over seeds)."""
    from superalign.stats import mean_ci_over_seeds

    if len(diffs) < 2:
        return f"{what}: {fmt(diffs[0]) if diffs else '—'} (one seed: no interval, no claim)"
    ci = mean_ci_over_seeds(diffs)
    verdict = "helped" if ci.low > 0 else "hurt" if ci.high < 0 else "no significant difference"
    return f"{what}: {ci.value:+.3f} {fmt_interval(ci.low, ci.high)} — {verdict}"


def generalize_section(metrics: list[Metric]) -> str:
    """Weak-to-strong: the PGR table, warnings, whether each method beat naive training, and the figure.

    Reads Metric records whose ``meta["w2s"]`` says what they are (``kind``: score, gap, pgr, agreement).
    """
    w2s = [m for m in metrics if _w2s(m)]
    if not w2s:
        return ""
    keyed: dict[tuple, Metric] = {}
    groups: dict[tuple[str, str], dict] = {}
    for m in w2s:
        w = _w2s(m)
        key = (w.get("task"), m.model)
        g = groups.setdefault(key, {"methods": [], "gaps": {}})
        keyed[(w.get("kind"), w.get("task"), m.model, w.get("role"), w.get("metric"))] = m
        if w.get("kind") == "score" and w.get("role") not in ("weak", "ceiling") and w["role"] not in g["methods"]:
            g["methods"].append(w["role"])
        if w.get("kind") == "gap":
            g["gaps"][w.get("metric")] = w
    n_seeds = max((m.n or 0) for m in w2s)
    parts = ["<h3>Weak-to-strong generalization</h3>",
             "<p>Protocol of Burns et al. (2023): the weak supervisor learns from the ground truth of one half of "
             "the training data and labels the other half with soft labels; the strong ceiling learns from the "
             "ground truth of that half; strong students learn from the weak labels only (early-stopped on weak "
             "labels). <b>PGR = (student − weak) / (ceiling − weak)</b> on test accuracy and AUROC, mean over "
             f"{n_seeds} seeds with a 95% t-interval. PGR is left undefined when the ceiling–weak gap is too small "
             "or not established, instead of printing a meaningless ratio.</p>"]
    rows, warnings, cautions, verdicts = [], [], [], []
    for (task, pair), g in groups.items():
        weak = keyed.get(("score", task, pair, "weak", "accuracy"))
        ceiling = keyed.get(("score", task, pair, "ceiling", "accuracy"))
        for metric, gap in g["gaps"].items():
            if not gap.get("pgr_defined", True):
                warnings.append(f"{task} ({pair}), {metric}: {gap.get('reason')}")
        chance = keyed.get(("score", task, pair, "weak", "auroc"))
        if chance is not None and _w2s(chance).get("near_chance"):
            cautions.append(f"{task} ({pair}): {_w2s(chance)['near_chance']}")
        for method in g["methods"]:
            student = keyed.get(("score", task, pair, method, "accuracy"))
            agree = keyed.get(("agreement", task, pair, method, None))
            rows.append([esc(task), esc(pair), _pgr_cell(weak), _pgr_cell(ceiling), esc(method), _pgr_cell(student),
                         _pgr_cell(keyed.get(("pgr", task, pair, method, "accuracy"))),
                         _pgr_cell(keyed.get(("pgr", task, pair, method, "auroc"))),
                         fmt(agree.value) if agree else "—"])
            if method == "naive" or "naive" not in g["methods"]:
                continue
            base = keyed.get(("score", task, pair, "naive", "accuracy"))
            if student is None or base is None:
                continue
            text = _paired_verdict([a - b for a, b in zip(_w2s(student)["per_seed"], _w2s(base)["per_seed"])],
                                   f"{method} − naive test accuracy")
            p_m = keyed.get(("pgr", task, pair, method, "accuracy"))
            p_n = keyed.get(("pgr", task, pair, "naive", "accuracy"))
            if p_m is not None and p_n is not None:
                text += "; " + _paired_verdict([a - b for a, b in zip(_w2s(p_m)["per_seed"], _w2s(p_n)["per_seed"])],
                                               "PGR difference")
            verdicts.append(f"<li><b>{esc(task)}</b> ({esc(pair)}): {esc(text)}</li>")
    parts.append(_table(["task", "weak → strong", "weak acc.", "ceiling acc.", "student", "student acc.",
                         "PGR (accuracy)", "PGR (AUROC)", "agrees with weak"], rows, numeric={2, 3, 5, 6, 7, 8}))
    if warnings:
        items = "".join(f"<li>{esc(w)}</li>" for w in warnings)
        parts.append(f'<div class="warn"><strong>PGR not reported</strong><ul>{items}</ul></div>')
    if cautions:
        items = "".join(f"<li>{esc(c)}</li>" for c in cautions)
        parts.append(f'<div class="warn"><strong>Read with care</strong><ul>{items}</ul></div>')
    if verdicts:
        parts.append("<h3>Did the method beat naive training?</h3><p class=muted>Paired over seeds (same split, same "
                     "weak labels); an interval that includes 0 is no effect.</p><ul>" + "".join(verdicts) + "</ul>")
    panels: dict[str, list[plots.W2SPoint]] = defaultdict(list)
    for (task, pair), g in groups.items():
        weak = keyed.get(("score", task, pair, "weak", "accuracy"))
        if weak is None:
            continue
        for role in ["ceiling", *g["methods"]]:
            m = keyed.get(("score", task, pair, role, "accuracy"))
            if m is not None:
                panels[task].append(plots.W2SPoint(role, weak.value, m.value, m.ci_low, m.ci_high))
    if panels:
        parts.append(_figure(plots.w2s_svg(dict(panels)), "Student test accuracy against its weak supervisor's "
                             "(Burns et al. 2023, Fig. 3). Dashed: the student only matches the supervisor (PGR = 0); "
                             "star: the strong ceiling (PGR = 1). Bars: 95% intervals over seeds."))
    several_pairs = len(groups) > len({t for t, _ in groups})
    bars = [plots.Bar(f"{_w2s(m)['task']} · {_w2s(m)['role']}" + (f" · {m.model}" if several_pairs else ""),
                      m.value, m.ci_low, m.ci_high)
            for m in w2s if _w2s(m).get("kind") == "pgr" and _w2s(m).get("metric") == "accuracy"]
    if bars:
        svg = plots.interval_bars_svg(bars, "performance gap recovered (accuracy)", "PGR (95% interval over seeds)")
        parts.append(_figure(svg, "0: the student only matches its weak supervisor; 1: it matches the strong ceiling."))
    return "".join(parts)


def _peak_text(peak: dict) -> str:
    if not peak:
        return ""
    text = f"gold peaks at step {peak.get('step')} (d = {fmt(peak.get('d'))})"
    if peak.get("overoptimized"):
        text += "; after it gold falls while the proxy keeps rising"
        if peak.get("drop_clear") is False:
            text += " (within noise: the peak's and the last point's gold intervals overlap)"
    return text


def stage_section(st: StageData) -> str:
    if st.info is not None:
        badge = f'<span class="badge done">finished {esc(st.info.get("finished_at", ""))}</span>'
    else:
        badge = '<span class="badge todo">not finished</span>'
    parts = [f'<section id="{_anchor(st.name)}"><h2>{esc(st.name)} {badge}</h2>']
    w2s = generalize_section(st.metrics)
    if w2s:  # the generalize stage: its own tables first, the raw metrics folded away
        parts += [w2s, f"<details><summary>All metrics ({len(st.metrics)})</summary>"
                       f"{metrics_section(st.metrics)}</details>"]
    else:
        parts.append(metrics_section(st.metrics))
    if st.evaluations:
        parts += [evaluation_summary(st.evaluations), instruction_section(st.evaluations),
                  examples_section(st.evaluations)]  # fmt: skip
    parts.append(policies_section(st.metrics))
    if st.points:
        parts.append(overoptimization_section(st.points, st.metrics))
    if st.preferences:
        parts.append(preferences_section(st.preferences))
    if st.judgements:
        parts.append(judgements_section(st.judgements))
    if st.info is not None and st.info.get("results"):
        results = json.dumps(st.info["results"], indent=2, sort_keys=True, default=str)
        parts.append(f"<details><summary>Stage results (JSON)</summary><pre>{esc(_truncate(results, 20000))}</pre></details>")
    parts.append("</section>")
    return "".join(parts)


_CSS = """
:root { --fg:#1d1d1f; --muted:#6e6e73; --line:#e3e3e8; --bg:#ffffff; --soft:#f6f7f9; --accent:#4C72B0; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif;
  font-size:15px; line-height:1.5; }
main { max-width: 980px; margin: 0 auto; padding: 32px 24px 64px; }
h1 { font-size: 1.7em; margin: 0 0 4px; }
h2 { font-size: 1.3em; margin: 40px 0 12px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.05em; margin: 24px 0 8px; }
.sub, .muted, figcaption { color: var(--muted); }
figcaption { font-size: .85em; margin-top: 2px; }
figure { margin: 12px 0 20px; }
figure svg { max-width: 100%; height: auto; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: .88em; }
pre { white-space: pre-wrap; word-break: break-word; background: var(--soft); border: 1px solid var(--line);
  border-radius: 6px; padding: 8px 10px; margin: 4px 0 8px; max-height: 28em; overflow: auto; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; font-size: .92em; }
th, td { border: 1px solid var(--line); padding: 5px 9px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
tbody tr:nth-child(even) { background: #fbfbfc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
details { margin: 6px 0; }
details > summary { cursor: pointer; color: var(--accent); }
details.example { border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; margin: 6px 0 6px 12px; }
details.example > summary { color: var(--fg); }
.msg .role { font-size: .75em; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
.badge { font-size: .6em; font-weight: 500; border-radius: 10px; padding: 2px 8px; vertical-align: middle; }
.badge.done { background: #e6f4ea; color: #1e6b34; }
.badge.todo { background: #fdf0e1; color: #8a4b08; }
.ok { color: #1e6b34; } .bad { color: #a61b1b; }
.checks span { display: inline-block; margin-right: 10px; font-size: .85em; }
.warn { background: #fff8e1; border: 1px solid #f0d890; border-radius: 6px; padding: 8px 12px; }
nav a { margin-right: 12px; color: var(--accent); text-decoration: none; }
footer { margin-top: 48px; color: var(--muted); font-size: .85em; }
"""


def build_html(run: RunData) -> str:
    """The whole page as a string."""
    title = f"superalign report — {run.name}"
    head_bits = [f"config <code>{esc(run.config_hash or 'unknown')}</code>"]
    if run.version:
        head_bits.append(f"superalign {esc(run.version)}")
    body = [f"<h1>{esc(title)}</h1><p class=sub>{' · '.join(head_bits)}</p>"]
    if run.stages:
        links = "".join(f'<a href="#{_anchor(s)}">{esc(s)}</a>' for s in run.stages)
        body.append(f"<nav>{links}</nav>")
    if run.warnings:
        items = "".join(f"<li>{esc(w)}</li>" for w in run.warnings)
        body.append(f'<div class="warn"><strong>Warnings</strong><ul>{items}</ul></div>')
    if run.config is not None:
        cfg = json.dumps(run.config, indent=2, sort_keys=True)
        body.append(f"<details><summary>Config</summary><pre>{esc(cfg)}</pre></details>")
    if not run.stages:
        body.append('<p class="muted">No stage has produced anything yet.</p>')
    body += [stage_section(st) for st in run.stages.values()]
    body.append(f"<footer>Rendered by superalign {esc(__version__)} from the run's records only. "
                "Intervals are 95%: metrics carry the interval their stage computed; evaluation summaries "
                "use a percentile bootstrap over items.</footer>")  # fmt: skip
    # The CSP forbids scripts and any network fetch, even if a record ever slipped past escaping.
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def render_report(run_dir: str | os.PathLike) -> Path:
    """Write ``run_dir/report.html`` from the run's records and return its path."""
    run = load_run(run_dir)
    out = run.path / "report.html"
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(build_html(run), encoding="utf-8")
    os.replace(tmp, out)
    return out
