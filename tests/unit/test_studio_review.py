"""The review campaign: ResearchFinding records become items, people accept or reject them (store, form and
API), the export holds their verdicts and apply_reviews puts them back on the findings."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from superalign.records import Judgement, Preference, ResearchFinding, read_jsonl, write_jsonl
from superalign.studio import StudioError, store
from superalign.studio.db import Label, open_db
from superalign.studio.items import CampaignConfig, apply_reviews, build_items, read_sources

CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
ITEM_ID = re.compile(r'name="item_id" value="(\d+)"')
SUBMISSION = re.compile(r'name="submission_id" value="([0-9a-f]+)"')


def _finding(i: int, **fields) -> ResearchFinding:
    values = {"id": f"finding-{i}", "claim": f"Claim {i}: a lower learning rate raises the gold reward.",
              "idea": {"train.lr": 3e-4, "train.optimizer": "adamw"}, "objective": "gold reward",
              "search_seeds": [0, 1, 2], "search_gain": 0.042, "search_ci": [0.01, 0.074],
              "fresh_seeds": [3, 4, 5], "fresh_gain": 0.031, "fresh_ci": [-0.005, 0.067], "held": False,
              "cost": {"runs": 24, "seconds": 3600, "server_queries": 120}}
    return ResearchFinding(**{**values, **fields})


@pytest.fixture
def records_file(tmp_path):
    # A run's records hold other kinds too: a review campaign takes only the findings.
    other = Preference(task_id="t0", prompt=[{"role": "user", "content": "Hi"}], chosen="a", rejected="b",
                       labeler="sim:bt")
    return write_jsonl(tmp_path / "run" / "records" / "research.jsonl",
                       [_finding(0), _finding(1, held=True, fresh_ci=[0.01, 0.05]), other])


@pytest.fixture
def sessions(studio_db_url):
    engine, factory = open_db(studio_db_url)
    yield factory
    engine.dispose()


def _campaign(s, path, name="review", **config):
    cfg = CampaignConfig(task="review", **config)
    return store.create_campaign(s, name, cfg, build_items(read_sources([path]), cfg))


def test_each_finding_is_one_readable_item_without_a_known_answer(records_file):
    config = CampaignConfig(task="review", gold_fraction=0.5)
    items = build_items(read_sources([records_file.parents[1]]), config)  # the run directory
    assert sorted(spec.key for spec in items) == ["finding:finding-0", "finding:finding-1"]
    spec = next(spec for spec in items if spec.task_id == "finding-0")
    (message,) = spec.prompt
    text = message["content"]
    assert message["role"] == "user" and text.startswith("Claim: Claim 0: a lower learning rate")
    assert "\n  train.lr = 0.0003\n  train.optimizer = adamw\n" in text  # one config change per line
    assert "search seeds (the idea was chosen on these): +0.042, 95% interval [+0.01, +0.074], 3 seeds: 0, 1, 2" in text
    assert "fresh seeds (never seen in the search): +0.031, 95% interval [-0.005, +0.067], 3 seeds: 3, 4, 5" in text
    assert "Held on fresh seeds: no" in text and "Cost: runs 24, seconds 3600, server queries 120" in text
    assert spec.meta == {"source": "research_finding", "finding": "finding-0"}
    assert all(s.truth is None and not s.gold and s.response_a is None for s in items)
    assert "Accept it if the evidence supports the claim" in config.instructions  # the task's default


def test_missing_evidence_reads_as_missing_not_as_a_number():
    finding = _finding(0, fresh_gain=None, fresh_ci=[None, None], held=None, search_ci=[float("nan")] * 2,
                       fresh_seeds=[], idea={}, cost={})
    (spec,) = build_items([finding], CampaignConfig(task="review"))
    text = spec.prompt[0]["content"]
    assert "+0.042, no interval, 3 seeds" in text
    assert "fresh seeds (never seen in the search): not measured, no seeds" in text
    assert "(none: the baseline configuration)" in text and "not judged" in text and "Cost: not recorded" in text


def test_a_source_without_findings_has_nothing_to_review(tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", [Preference(task_id="t0", prompt=[{"role": "user", "content": "Hi"}],
                                                             chosen="a", rejected="b", labeler="sim:bt")])
    with pytest.raises(StudioError, match="nothing to label for a review campaign"):
        build_items(read_sources([path]), CampaignConfig(task="review"))


def test_review_campaign_from_records_to_reviewed_findings(sessions, records_file, tmp_path):
    with sessions() as s:
        c = _campaign(s, records_file)
        ann, _ = store.add_labeler(s, c, "ann")
        verdicts = {"finding-0": {"verdict": "accept"},
                    "finding-1": {"verdict": "reject", "comment": "the fresh interval is narrow but from 3 seeds"}}
        while (served := store.next_item(s, ann)) is not None:
            assert served.item.truth is None and "Claim" in served.item.prompt[0]["content"]
            store.submit(s, ann, served.item.id, f"review-{served.item.id:06d}", verdicts[served.item.task_id])
        records = store.export_records(s, c)
        q = store.quality(s, c)
    assert q.answers == {"accept": 1, "reject": 1}
    assert all(isinstance(r, Judgement) and r.judge == "human:ann" for r in records)
    by_item = {r.item_id: r for r in records}
    assert by_item["finding:finding-1"].verdict == "reject" and by_item["finding:finding-1"].score == 0.0
    assert by_item["finding:finding-0"].meta["finding"] == "finding-0"
    # From the export file, as the report reads it: the findings come back reviewed, in their order.
    exported = read_jsonl(write_jsonl(tmp_path / "reviews.jsonl", records))
    findings = [r for r in read_jsonl(records_file) if isinstance(r, ResearchFinding)]
    reviewed = apply_reviews(findings, exported)
    assert [f.id for f in reviewed] == ["finding-0", "finding-1"]
    assert reviewed[0].review == {"verdict": "accept", "comment": "", "reviewer": "human:ann"}
    assert reviewed[1].review == {"verdict": "reject", "comment": "the fresh interval is narrow but from 3 seeds",
                                  "reviewer": "human:ann"}
    assert apply_reviews(findings, [r.model_dump(mode="json") for r in records]) == reviewed  # JSON objects too
    assert findings[0].review is None  # the records given are not changed


@pytest.mark.parametrize("answer, message", [
    ({}, "answer.verdict: Field required"),
    ({"verdict": "maybe"}, "answer.verdict: Input should be 'accept' or 'reject'"),
    ({"verdict": "Accept"}, "answer.verdict: Input should be 'accept' or 'reject'"),
    ({"verdict": True}, "answer.verdict: Input should be 'accept' or 'reject'"),
    ({"verdict": None}, "answer.verdict: Input should be 'accept' or 'reject'"),
    ({"verdict": "accept", "why": "x"}, "answer.why: "),
    ({"verdict": "reject", "comment": "x" * 2001}, "answer.comment: "),
])
def test_a_bad_verdict_is_refused_with_one_clear_line(sessions, records_file, answer, message):
    with sessions() as s:
        c = _campaign(s, records_file)
        ann, _ = store.add_labeler(s, c, "ann")
        item = store.next_item(s, ann).item
        with pytest.raises(store.InvalidInput) as err:
            store.submit(s, ann, item.id, "submission-1", answer)
        assert str(err.value).startswith(message) and "\n" not in str(err.value)
        assert s.scalar(select(func.count(Label.id))) == 0


def test_review_campaigns_have_no_gold(sessions, records_file):
    with sessions() as s:
        cfg = CampaignConfig(task="review")
        items = build_items(read_sources([records_file]), cfg)
        items[0].gold, items[0].truth = True, {"verdict": "accept"}
        with pytest.raises(StudioError, match="review campaign cannot have gold items"):
            store.create_campaign(s, "gold", cfg, items)


def _review(finding: str, who: str, verdict: str, comment: str = "") -> Judgement:
    return Judgement(item_id=f"finding:{finding}", judge=f"human:{who}", verdict=verdict,
                     meta={"source": "research_finding", "finding": finding, "studio": {"comment": comment}})


def test_several_reviewers_give_the_majority_and_a_tie_rejects():
    findings = [_finding(i) for i in range(4)]
    rows = [_review("finding-0", "ann", "accept", "convincing"), _review("finding-0", "bob", "accept"),
            _review("finding-0", "cy", "reject", "3 seeds are few"),
            _review("finding-1", "ann", "accept"), _review("finding-1", "bob", "reject"),
            _review("finding-2", "ann", "reject"), _review("finding-2", "ann", "reject"),  # a row read twice
            Judgement(item_id="k", judge="human:ann", verdict="4")]  # another campaign's judgement
    out = apply_reviews(findings, rows)
    assert out[0].review["verdict"] == "accept" and out[0].review["reviewer"] == "human:ann, human:bob, human:cy"
    assert out[0].review["comment"] == "human:ann: convincing; human:cy: 3 seeds are few"
    assert [r["verdict"] for r in out[0].review["reviews"]] == ["accept", "accept", "reject"]
    assert out[1].review["verdict"] == "reject" and len(out[1].review["reviews"]) == 2  # 1 to 1: not accepted
    assert out[2].review == {"verdict": "reject", "comment": "", "reviewer": "human:ann"}
    assert out[3] is findings[3] and out[3].review is None  # nobody reviewed it


# --- the web app: the form and the JSON API ------------------------------------------------------------


def _client(sessions):
    from fastapi.testclient import TestClient

    from superalign.studio.web import create_app

    return TestClient(create_app(sessions=sessions), base_url="http://127.0.0.1:8765", follow_redirects=False)


def _form(page) -> dict:
    return {"csrf": CSRF.search(page.text).group(1), "item_id": ITEM_ID.search(page.text).group(1),
            "submission_id": SUBMISSION.search(page.text).group(1)}


def test_review_form_and_api(sessions, records_file):
    with sessions() as s:
        c = _campaign(s, records_file)
        ann_token, bob_token = store.add_labeler(s, c, "ann")[1], store.add_labeler(s, c, "bob")[1]
    client = _client(sessions)
    login = client.get("/login")
    client.post("/login", data={"token": ann_token, "csrf": CSRF.search(login.text).group(1)})
    page = client.get("/label")
    assert page.status_code == 200 and 'data-task="review"' in page.text and "<h2>Finding</h2>" in page.text
    assert 'name="verdict" value="accept"' in page.text and 'name="verdict" value="reject"' in page.text
    assert "Held on fresh seeds" in page.text and "research_finding" not in page.text  # no metadata shown
    refused = client.post("/label", data={**_form(page), "comment": "kept"})  # no verdict picked
    assert refused.status_code == 422 and "Not saved: answer.verdict" in refused.text
    assert 'value="kept"' in refused.text  # the comment typed survives the refusal
    again = client.post("/label", data={**_form(refused), "verdict": "reject", "comment": "too few seeds"})
    assert again.status_code == 303 and again.headers["location"] == "/label?saved=1"

    headers = {"Authorization": f"Bearer {bob_token}"}
    item = client.get("/api/v1/next", headers=headers).json()["item"]
    assert item["task"] == "review" and item["response_a"] is None
    body = {"item_id": item["id"], "submission_id": "b" * 16, "answer": {"verdict": "maybe"}}
    bad = client.post("/api/v1/labels", headers=headers, json=body)
    assert bad.status_code == 422 and bad.json()["detail"].startswith("answer.verdict: ")
    ok = client.post("/api/v1/labels", headers=headers, json={**body, "answer": {"verdict": "accept"}})
    assert ok.status_code == 201
    with sessions() as s:
        answers = sorted(label.answer["verdict"] for label in s.scalars(select(Label)))
    assert answers == ["accept", "reject"]
