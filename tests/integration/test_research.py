"""`superalign research` end to end on the smoke profile: the evaluation server in its own process, the agent in a
sandboxed one, a finding checked on fresh seeds, every record and the report section."""

from __future__ import annotations

import json

from tests.integration.test_cli import superalign


def test_research_on_the_smoke_profile_gives_a_finding_checked_on_fresh_seeds(tmp_path):
    proc = superalign("research", "--profile", "smoke", "--device", "cpu", "--proposer", "random", "--trials", "2",
                      home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = [p for p in (tmp_path / "runs").glob("[!.]*") if p.is_dir()]
    records = [json.loads(line) for line in (run_dir / "records" / "research.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["type"] == "research_step"]
    (finding,) = [r for r in records if r["type"] == "research_finding"]
    assert [s["step"] for s in steps] == [0, 1, 2] and steps[0]["proposer"] == "baseline"
    assert {s["proposer"] for s in steps[1:]} == {"random"} and all(s["seconds"] > 0 for s in steps)
    assert not set(finding["fresh_seeds"]) & set(finding["search_seeds"])  # seeds the agent never saw
    assert finding["search_seeds"] == [0, 1, 2] and finding["cost"]["test_score_queries"] > 0
    assert [r for r in records if r["type"] == "exploit_attempt"] == []  # an honest agent reads nothing it may not

    work = run_dir / "work" / "research"
    spec = json.loads((work / "agent.json").read_text())
    # the agent's sandbox refuses the server's files and the harness's (its exploit log, the fresh-seed runs)
    assert spec["forbidden"] == [str(work / "server"), str(work / "harness")]
    assert spec["sandbox_report"].startswith(str(work / "harness"))
    fresh_runs = {json.loads(p.read_text())["config"]["seed"] for p in (work / "harness" / "runs").glob("*/config.json")}
    assert fresh_runs == set(finding["fresh_seeds"])  # the fresh check ran in the harness's own store
    assert (work / "server" / "labels" / "fact.json").stat().st_mode & 0o077 == 0
    queries = [json.loads(line) for line in (work / "server" / "queries.jsonl").read_text().splitlines()]
    assert sum(q["route"] == "score" and q["test"] for q in queries) == finding["cost"]["test_score_queries"]
    html = (run_dir / "report.html").read_text()
    assert "The finding" in html and "Research log" in html and "None logged" in html
    metrics = json.loads((run_dir / "results.json").read_text())["metrics"]["research"]
    assert metrics["research.steps"]["value"] == 3 and "research.best.search_gain" in metrics
    _review(tmp_path, run_dir, finding["id"])


def _review(tmp_path, run_dir, finding_id: str) -> None:
    """A person rejects the finding in the studio; `report --reviews` puts the verdict in the records and report."""
    from superalign.records import write_jsonl
    from superalign.studio import store
    from superalign.studio.db import open_db
    from superalign.studio.items import CampaignConfig, build_items, read_sources

    engine, sessions = open_db(f"sqlite:///{tmp_path / 'studio.db'}")
    with sessions() as s:
        config = CampaignConfig(task="review")
        campaign = store.create_campaign(s, "findings", config, build_items(read_sources([run_dir]), config))
        ann, _ = store.add_labeler(s, campaign, "ann")
        served = store.next_item(s, ann)
        assert served.item.task_id == finding_id and "Claim" in served.item.prompt[0]["content"]
        store.submit(s, ann, served.item.id, "review-1", {"verdict": "reject", "comment": "smoke models: noise"})
        write_jsonl(tmp_path / "reviews.jsonl", store.export_records(s, campaign))
    engine.dispose()
    proc = superalign("report", str(run_dir), "--reviews", str(tmp_path / "reviews.jsonl"), home=tmp_path / "home",
                      cwd=tmp_path)
    assert proc.returncode == 0 and "1 of 1 finding(s) reviewed" in proc.stderr, proc.stderr
    records = [json.loads(line) for line in (run_dir / "records" / "research.jsonl").read_text().splitlines()]
    (finding,) = [r for r in records if r["type"] == "research_finding"]
    assert finding["review"]["verdict"] == "reject" and finding["review"]["reviewer"] == "human:ann"
    assert len([r for r in records if r["type"] == "research_step"]) == 3  # the other records kept as they were
    assert "reject: smoke models: noise" in (run_dir / "report.html").read_text()


def test_research_is_not_part_of_the_main_job_and_a_bad_proposer_stops_in_one_line(tmp_path):
    proc = superalign("config", "--profile", "smoke", home=tmp_path / "home", cwd=tmp_path)
    assert "- research" not in proc.stdout and "- stress" in proc.stdout
    proc = superalign("research", "--profile", "smoke", "--proposer", "chat", home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 2 and "research.proposer chat needs research.proposer_role" in proc.stderr, proc.stderr
