"""The report's generalize section: PGR table, undefined PGRs as warnings, verdicts, figure; escaped; no torch."""

from __future__ import annotations

import re
import subprocess
import sys

from pydantic import BaseModel

from superalign.records import Metric, write_jsonl
from superalign.report import render_report
from superalign.runs import Run
from superalign.weak_to_strong.metrics import as_metric, summarize

EVIL = "<script>alert(1)</script>"


class Cfg(BaseModel):
    model: str = "tiny-llama"


class _Scores:
    def __init__(self, acc: float):
        self.accuracy, self.auroc = acc, min(1.0, acc + 0.05)


class _Trained:
    def __init__(self, acc: float):
        self.scores = _Scores(acc)


class _Outcome:
    """Just what summarize() reads from a SeedOutcome (keeps this test free of torch)."""

    def __init__(self, task: str, seed: int, accs: dict[str, float], weak: str = "minilm-l6"):
        self.task, self.weak, self.strong, self.seed = task, weak, "smollm2", seed
        self.models = {role: _Trained(acc) for role, acc in accs.items()}
        self.student_weak_agreement = {m: 0.8 for m in accs if m not in ("weak", "ceiling")}
        self.weak_label_accuracy = accs["weak"]

    def score(self, role: str, metric: str) -> float:
        return getattr(self.models[role].scores, metric)


def make_w2s_run(root) -> Run:
    outcomes = []
    for s in range(3):
        outcomes.append(_Outcome("fact", s, {"weak": 0.60 + 0.01 * s, "ceiling": 0.80, "naive": 0.66 + 0.005 * s,
                                             "confidence": 0.74 + 0.004 * s}))
        outcomes.append(_Outcome(EVIL, s, {"weak": 0.70, "ceiling": 0.705 + 0.001 * s, "naive": 0.70,
                                           "confidence": 0.69}))
    scores, _ = summarize(outcomes, min_gap=0.02)
    run = Run.open(root, "w2s-demo", Cfg())
    run.log_metrics([as_metric(s) for s in scores])
    write_jsonl(run.records_path("generalize"), scores)  # the report reads the typed records, not metric meta
    run.mark_done("generalize", {"table": [], "notes": []})
    return run


def test_generalize_section_shows_the_pgr_table_and_figure(tmp_path):
    html = render_report(make_w2s_run(tmp_path).path).read_text()
    section = html.split('id="stage-generalize"', 1)[1]
    assert "Weak-to-strong generalization" in section and "PGR = (student − weak) / (ceiling − weak)" in section
    row = re.search(r"<tr><td>fact</td>.*?</tr>", section).group(0)
    assert "minilm-l6 -&gt; smollm2" in row and "naive" in row
    assert re.search(r"<td class=num>0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]</td>", row)  # PGR with its interval
    assert "performance gap recovered by naive on accuracy" in section  # metric names are explained
    assert "<svg" in section and "Fig. 3" in section
    assert "confidence − naive test accuracy" in section and "helped" in section  # +0.08 in every seed


def test_chance_count_and_two_seed_rows_without_intervals(tmp_path):
    html = render_report(make_w2s_run(tmp_path).path).read_text()
    assert re.search(r"(\d) of (\d) PGR intervals exclude 0; .* about 0\.\d times by chance", html)
    outcomes = [_Outcome("fact", s, {"weak": 0.60 + 0.01 * s, "ceiling": 0.80, "naive": 0.66}) for s in range(2)]
    scores, _ = summarize(outcomes, min_gap=0.02)
    assert all(s.ci_low is None and s.ci_high is None for s in scores)  # two seeds: no interval anywhere
    run = Run.open(tmp_path, "two-seeds", Cfg())
    write_jsonl(run.records_path("generalize"), scores)
    run.mark_done("generalize", {"table": [], "notes": []})
    row = re.search(r"<tr><td>fact</td>.*?</tr>", render_report(run.path).read_text()).group(0)
    assert "(2 seeds: no interval)" in row and "[" not in row


def test_undefined_pgr_is_a_warning_not_a_number(tmp_path):
    html = render_report(make_w2s_run(tmp_path).path).read_text()
    assert "PGR not reported" in html and "below min_gap" in html
    evil_rows = re.findall(r"<tr><td>&lt;script&gt;.*?</tr>", html)
    assert len(evil_rows) == 2 and all(r.count("undefined") == 2 for r in evil_rows)  # PGR on accuracy and AUROC
    assert EVIL not in html  # escaped everywhere


def test_raw_metrics_are_folded_away(tmp_path):
    html = render_report(make_w2s_run(tmp_path).path).read_text()
    assert re.search(r"<details><summary>All metrics \(\d+\)</summary>", html)


def test_a_stage_without_w2s_metrics_keeps_the_plain_layout(tmp_path):
    run = Run.open(tmp_path, "plain", Cfg())
    run.log_metrics([Metric(stage="generalize", name="custom.score", value=0.5)])
    html = render_report(run.path).read_text()
    assert "Weak-to-strong generalization" not in html and "custom.score" in html


def test_rendering_the_section_does_not_import_torch(tmp_path):
    run = make_w2s_run(tmp_path)
    code = ("import sys; from superalign.report import render_report; "
            f"render_report({str(run.path)!r}); "
            "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
