"""The across-runs page: each metric per run, the mean over runs with an interval that fits the metric."""

from __future__ import annotations

import math
import re
import subprocess
import sys

from pydantic import BaseModel

from superalign.records import Metric
from superalign.report.across import across_rows, load_runs, render_across
from superalign.report.data import load_run
from superalign.runs import Run


class Cfg(BaseModel):
    seed: int
    model: str = "m"


def _run(root, seed: int, gain: float, acc: float, labels: int = 1000) -> Run:
    run = Run.open(root, f"run-s{seed}", Cfg(seed=seed))
    run.log_metrics([
        Metric(stage="train", name="dpo.gold_gain", value=gain, ci_low=gain - 0.05, ci_high=gain + 0.05, n=96,
               meta={"rate": False}),
        Metric(stage="train", name="dpo.fact_accuracy", value=acc, ci_low=acc - 0.1, ci_high=min(1.0, acc + 0.1)),
        Metric(stage="train", name="dpo.labels", value=float(labels), meta={"up_front": labels, "during_training": 0}),
        Metric(stage="train", name=f"only_in_seed_{seed}", value=1.0),
    ])  # fmt: skip
    return run


def test_rows_take_the_mean_over_runs_with_the_right_interval(tmp_path):
    runs = [_run(tmp_path, s, g, a) for s, g, a in ((2, 0.10, 0.98), (3, 0.02, 0.99), (4, 0.12, 1.0))]
    rows = {r["name"]: r for r in across_rows([load_run(r.path) for r in runs])}
    assert set(rows) == {"dpo.gold_gain", "dpo.fact_accuracy", "dpo.labels"}  # only what every run has
    gain = rows["dpo.gold_gain"]
    assert math.isclose(gain["value"], 0.08) and gain["low"] < 0.08 < gain["high"]  # t-interval: may cross 0
    assert gain["low"] < 0 and gain["excluding"] == "2 of 3"  # seed 3's own interval includes 0
    acc = rows["dpo.fact_accuracy"]
    assert 0.98 <= acc["low"] <= acc["high"] <= 1.0  # a rate's interval stays in [0, 1] (a t-interval would not)
    assert rows["dpo.labels"]["mean"] == "1,000" and rows["dpo.labels"]["interval"] == ""


def test_two_runs_give_no_interval_and_the_page_and_cli_work(tmp_path):
    runs = [_run(tmp_path, s, g, 0.5) for s, g in ((0, 0.1), (1, 0.2))]
    rows = across_rows([load_run(r.path) for r in runs])
    assert all(r["interval"] in ("", "no interval (2 runs)") for r in rows)
    out = render_across(load_runs([r.path for r in runs]), tmp_path / "across.html")
    html = out.read_text()
    assert "seed 0" in html and "seed 1" in html and "no interval (2 runs)" in html
    again = Run.open(tmp_path, "again", Cfg(seed=1, model="other"))  # the same seed twice is not two draws
    again.log_metrics([Metric(stage="train", name="dpo.gold_gain", value=0.3)])
    assert "seed 1 appears 2 times" in render_across(load_runs([*[r.path for r in runs], again.path])).read_text()
    proc = subprocess.run([sys.executable, "-m", "superalign", "report", str(runs[0].path), str(runs[1].path),
                           "--out", str(tmp_path / "cli.html")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "dpo.gold_gain" in proc.stdout and (tmp_path / "cli.html").is_file()
    bad = subprocess.run([sys.executable, "-m", "superalign", "report", str(runs[0].path), str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and re.search(r"is not a run directory", bad.stderr + bad.stdout)


def test_the_report_the_across_page_and_sweeps_share_one_rule_for_rates_and_headlines():
    from superalign.report.glossary import is_headline, is_rate
    from superalign.sweep import headline

    assert is_rate("dpo.win_rate", [0.4, 0.6]) and not is_rate("dpo.win_rate", [0.4, 1.2])
    assert not is_rate("assist.critique.uplift", [0.1, 0.2])  # a difference, in [0, 1] by chance
    assert not is_rate("ppo.kl", [0.3]) and not is_rate("dpo.gold_gain@m", [0.1])  # a name part; a sweep's @model
    assert is_rate("x.loss", [0.3], flag=True) and not is_rate("y.accuracy", [0.3], flag=False)  # the flag wins
    assert not is_rate("y.accuracy", [float("nan")])
    names = ["dpo.gold", "dpo.labels", "assist.debate.uplift", "audit.overall.auroc", "dpo.gold_gain@m"]
    assert [n for n in names if is_headline(n)] == names[1:]
    assert [r["metric"] for r in headline([{"metric": n} for n in names])] == names[1:]  # sweeps read the same
