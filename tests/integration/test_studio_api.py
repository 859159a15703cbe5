"""Every studio endpoint through the real app (in process), on SQLite and PostgreSQL: the pages, the JSON API,
bad inputs, CSRF, and what a labeler may not see."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from superalign.studio import security, store
from superalign.studio.db import Label, WebSession, open_db
from superalign.studio.items import CampaignConfig, ItemSpec

PROMPT = [{"role": "user", "content": "Which planet is largest?"}]
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
ITEM_ID = re.compile(r'name="item_id" value="(\d+)"')
SUBMISSION = re.compile(r'name="submission_id" value="([0-9a-f]+)"')


@dataclass
class Studio:
    url: str
    sessions: object
    engine: object
    tokens: dict
    admin: str

    def client(self):
        from fastapi.testclient import TestClient

        from superalign.studio.web import create_app

        return TestClient(create_app(sessions=self.sessions), base_url="http://127.0.0.1:8765",
                          follow_redirects=False)

    def labels(self) -> int:
        with self.sessions() as s:
            return s.scalar(select(func.count(Label.id)))


def _pairs(n: int, gold: int = 1) -> list[ItemSpec]:
    return [ItemSpec(key=f"p{i}", task_id=f"t{i}", prompt=PROMPT, response_a=f"Jupiter {i}", response_b=f"Mars {i}",
                     assistance={"kind": "critique", "text": f"Mars is smaller than Jupiter ({i})."},
                     truth={"choice": "A"} if i < gold else None, gold=i < gold, meta={"secret": "do not leak"})
            for i in range(n)]


@pytest.fixture
def studio(studio_db_url):
    engine, sessions = open_db(studio_db_url)
    with sessions() as s:
        main = store.create_campaign(s, "main", CampaignConfig(task="pairwise", assist="all", gold_fraction=0,
                                                               labels_per_item=2), _pairs(4))
        other = store.create_campaign(s, "other", CampaignConfig(task="pairwise", gold_fraction=0), _pairs(2, 0))
        demo = store.create_campaign(s, "demo", CampaignConfig(task="demonstration"),
                                     [ItemSpec(key="d0", task_id="d0", prompt=PROMPT)])
        tokens = {"ann": store.add_labeler(s, main, "ann")[1], "bob": store.add_labeler(s, main, "bob")[1],
                  "olga": store.add_labeler(s, other, "olga")[1], "dee": store.add_labeler(s, demo, "dee")[1]}
        admin = store.issue_admin_token(s)
    yield Studio(studio_db_url, sessions, engine, tokens, admin)
    engine.dispose()


def _csrf(response) -> str:
    return CSRF.search(response.text).group(1)


def _login(client, token: str, path: str = "/login"):
    page = client.get(path)
    assert page.status_code == 200
    return client.post(path, data={"token": token, "csrf": _csrf(page)})


def _form(page) -> dict:
    return {"csrf": _csrf(page), "item_id": ITEM_ID.search(page.text).group(1),
            "submission_id": SUBMISSION.search(page.text).group(1)}


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# --- pages -------------------------------------------------------------------------------------------


def test_labeler_logs_in_and_labels_through_the_form(studio):
    client = studio.client()
    assert client.get("/label").headers["location"] == "/login"  # not signed in yet
    response = _login(client, studio.tokens["ann"])
    assert response.status_code == 303 and response.headers["location"] == "/label"
    set_cookie = response.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "samesite=strict" in set_cookie.lower()
    page = client.get("/label")
    assert page.status_code == 200
    assert "Which planet is largest?" in page.text and "0 done · 4 left" in page.text
    assert "AI critique" in page.text and "Mars is smaller than Jupiter" in page.text  # assist=all
    assert "do not leak" not in page.text  # item metadata stays on the server
    form = {**_form(page), "choice": "A", "confidence": "0.9", "comment": "clear"}
    response = client.post("/label", data=form)
    assert response.status_code == 303 and response.headers["location"] == "/label?saved=1"
    again = client.post("/label", data=form)  # a double submit or a retry: one label
    assert again.status_code == 303
    assert studio.labels() == 1
    page = client.get("/label?saved=1")
    assert "1 done · 3 left" in page.text and "Saved." in page.text
    with studio.sessions() as s:
        label = s.scalars(select(Label)).one()
        assert label.answer == {"choice": "A", "confidence": 0.9, "comment": "clear"} and label.assisted


def test_form_errors_are_clear_and_write_nothing(studio):
    client = studio.client()
    _login(client, studio.tokens["ann"])
    page = client.get("/label")
    form = _form(page)
    missing = client.post("/label", data={**form})  # no choice
    assert missing.status_code == 422 and "Not saved: answer.choice" in missing.text
    too_long = client.post("/label", data={**form, "choice": "A", "comment": "x" * 5000})
    assert too_long.status_code == 422 and "answer.comment" in too_long.text
    no_csrf = client.post("/label", data={k: v for k, v in {**form, "choice": "A"}.items() if k != "csrf"})
    assert no_csrf.status_code == 403
    forged = client.post("/label", data={**form, "choice": "A", "csrf": "0" * 64})
    assert forged.status_code == 403
    bad_id = client.post("/label", data={**form, "choice": "A", "item_id": "not-a-number"})
    assert bad_id.status_code == 422 and "item_id" in bad_id.text
    superscript = client.post("/label", data={**form, "choice": "A", "item_id": "²"})
    assert superscript.status_code == 422 and "item_id" in superscript.text
    from urllib.parse import urlencode

    latin1 = urlencode({**form, "choice": "A"}) + "&comment=caf%E9"  # "café" in Latin-1: not UTF-8
    bad_bytes = client.post("/label", content=latin1.encode(),
                            headers={"content-type": "application/x-www-form-urlencoded"})
    assert bad_bytes.status_code == 400 and "not valid UTF-8" in bad_bytes.text
    with studio.sessions() as s:
        other_item = store.next_item(s, store.find_labeler(s, studio.tokens["olga"])).item.id
    foreign = client.post("/label", data={**form, "choice": "A", "item_id": str(other_item)})
    assert foreign.status_code == 404 and "not in your queue" in foreign.text
    assert studio.labels() == 0
    ok = client.post("/label", data={**form, "choice": "B"})
    assert ok.status_code == 303
    second = client.post("/label", data={**form, "choice": "A", "submission_id": "f" * 32})
    assert second.status_code == 409 and "already labeled" in second.text
    assert studio.labels() == 1


def test_login_needs_a_valid_token_and_csrf(studio):
    client = studio.client()
    wrong = _login(client, "A" * 43)
    assert wrong.status_code == 401 and "Unknown or revoked token" in wrong.text
    assert "sa_labeler" not in client.cookies
    stale = client.post("/login", data={"token": studio.tokens["ann"], "csrf": "0" * 64})
    assert stale.status_code == 403
    other = studio.client()  # another browser's CSRF token does not work in this one
    token = _csrf(other.get("/login"))
    assert client.post("/login", data={"token": studio.tokens["ann"], "csrf": token}).status_code == 403
    assert "sa_labeler" not in client.cookies


def test_logout_and_revoked_tokens(studio):
    client = studio.client()
    _login(client, studio.tokens["ann"])
    page = client.get("/label")
    assert client.post("/logout", data={"csrf": _csrf(page)}).status_code == 303
    client.cookies.delete("sa_labeler")  # what the browser does with the expired cookie
    assert client.get("/label").headers["location"] == "/login"
    _login(client, studio.tokens["bob"])
    with studio.sessions() as s:
        store.revoke(s, store.find_labeler(s, studio.tokens["bob"]))
    assert client.get("/label").headers["location"] == "/login"
    assert client.post("/label", data={"csrf": "x"}).status_code == 401


def test_labelers_never_reach_admin_pages(studio):
    client = studio.client()
    _login(client, studio.tokens["ann"])
    assert client.get("/admin").headers["location"] == "/admin/login"
    assert client.get("/admin/campaigns/main/export.jsonl").headers["location"] == "/admin/login"
    assert _login(client, studio.tokens["ann"], "/admin/login").status_code == 401  # a labeler token is not admin
    assert client.get("/api/v1/admin/campaigns", headers=_bearer(studio.tokens["ann"])).status_code == 401
    assert client.get("/api/v1/admin/campaigns/main/export", headers=_bearer(studio.tokens["ann"])).status_code == 401


def test_admin_dashboard_counts_and_export(studio):
    api = studio.client()
    for name in ("ann", "bob"):
        for _ in range(2):
            item = api.get("/api/v1/next", headers=_bearer(studio.tokens[name])).json()["item"]
            r = api.post("/api/v1/labels", headers=_bearer(studio.tokens[name]),
                         json={"item_id": item["id"], "submission_id": f"{name}-{item['id']}-xyz",
                               "answer": {"choice": "A"}})
            assert r.status_code == 201
    admin = studio.client()
    assert _login(admin, studio.admin, "/admin/login").headers["location"] == "/admin"
    page = admin.get("/admin")
    assert page.status_code == 200
    section = page.text.split('id="campaign-main"')[1].split("</section>")[0]
    assert re.search(r'data-count="labels">4<', section) and re.search(r'data-count="items">4<', section)
    assert re.search(r'data-labeler="ann">.*?data-field="labels">2<', section, re.S)
    assert 'data-field="alpha"' in section  # both labeled the same two items: agreement is computed
    export = admin.get("/admin/campaigns/main/export.jsonl")
    assert export.status_code == 200 and export.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(x) for x in export.text.splitlines()]
    assert len(lines) == 4 and {x["type"] for x in lines} == {"preference"}
    summary = api.get("/api/v1/admin/campaigns", headers=_bearer(studio.admin)).json()
    main = next(c for c in summary if c["name"] == "main")
    assert main["counts"]["labels"] == 4 and main["quality"]["overlap_items"] == 2
    assert api.get("/api/v1/admin/campaigns/nope/export", headers=_bearer(studio.admin)).status_code == 404
    page = admin.get("/admin")
    assert admin.post("/admin/logout", data={"csrf": _csrf(page)}).status_code == 303


def test_rating_flaw_and_demonstration_forms(studio):
    with studio.sessions() as s:
        specs = {"rating": ItemSpec(key="r0", task_id="r0", prompt=PROMPT, response_a="Jupiter."),
                 "flaw": ItemSpec(key="f0", task_id="f0", prompt=PROMPT, response_a="Saturn, the largest."),
                 "demonstration": ItemSpec(key="d0", task_id="d0", prompt=PROMPT)}
        tokens = {}
        for task, spec in specs.items():
            c = store.create_campaign(s, f"form-{task}", CampaignConfig(task=task, scale=5), [spec])
            tokens[task] = store.add_labeler(s, c, "fay")[1]
    answers = {
        "rating": ({"rating": "9"}, {"rating": "4", "comment": "ok"}, {"rating": 4, "comment": "ok"}),
        "flaw": ({"flaws": "[{\"start\": 0}]"},
                 {"flaws": json.dumps([{"start": 0, "end": 6, "category": "factual error", "severity": "major",
                                        "comment": "it is Jupiter"}])},
                 {"flaws": [{"start": 0, "end": 6, "category": "factual error", "severity": "major",
                             "comment": "it is Jupiter"}], "comment": ""}),
        "demonstration": ({"text": "   "}, {"text": "Jupiter.\r\nBy far."},
                          {"text": "Jupiter.\nBy far.", "comment": ""}),
    }
    for task, (bad, good, stored) in answers.items():
        client = studio.client()
        _login(client, tokens[task])
        page = client.get("/label")
        assert page.status_code == 200 and f'data-task="{task}"' in page.text
        refused = client.post("/label", data={**_form(page), **bad})
        assert refused.status_code == 422 and "Not saved: answer." in refused.text, task
        for worse in {"rating": [{"rating": "²"}, {"rating": "٣"}],  # unicode digits: isdigit(), not int()
                      "flaw": [{"flaws": "[" * 5000 + "]" * 5000}, {"flaws": "[" + "9" * 5000 + "]"}]}.get(task, []):
            r = client.post("/label", data={**_form(page), **worse})
            assert r.status_code == 422 and "Not saved: answer." in r.text, (task, r.status_code)
        assert client.post("/label", data={**_form(page), **good}).status_code == 303, task
        assert "All done" in client.get("/label").text
        with studio.sessions() as s:
            labeler = store.find_labeler(s, tokens[task])
            (label,) = s.scalars(select(Label).where(Label.labeler_id == labeler.id)).all()
            assert {k: v for k, v in label.answer.items() if k in stored} == stored, task


# --- API -----------------------------------------------------------------------------------------------


def test_api_requires_a_token(studio):
    client = studio.client()
    r = client.get("/api/v1/next")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/v1/progress", headers=_bearer("nonsense")).status_code == 401
    assert client.post("/api/v1/labels", headers=_bearer("A" * 43), json={}).status_code == 401
    # A cookie is not an API credential (so the API needs no CSRF token).
    _login(client, studio.tokens["ann"])
    assert client.get("/api/v1/next").status_code == 401


def test_api_item_view_hides_truth_and_metadata(studio):
    client = studio.client()
    body = client.get("/api/v1/next", headers=_bearer(studio.tokens["ann"])).json()
    item = body["item"]
    assert set(item) == {"id", "task", "task_id", "prompt", "response_a", "response_b", "assistance"}
    assert item["assistance"]["kind"] == "critique"
    assert body["progress"] == {"done": 0, "remaining": 4} and body["campaign"]["task"] == "pairwise"
    # Campaign "other" assigns assistance by a coin per labeler x item: shown exactly when recorded so.
    olga = client.get("/api/v1/next", headers=_bearer(studio.tokens["olga"])).json()
    with studio.sessions() as s:
        served = store.next_item(s, store.find_labeler(s, studio.tokens["olga"]))
        assert (olga["item"]["assistance"] is not None) == served.assignment.assisted


def test_api_submission_is_idempotent_and_validated(studio):
    client = studio.client()
    ann, bob = _bearer(studio.tokens["ann"]), _bearer(studio.tokens["bob"])
    item = client.get("/api/v1/next", headers=ann).json()["item"]
    body = {"item_id": item["id"], "submission_id": "11111111-aaaa", "answer": {"choice": "B", "confidence": 0.75}}
    first = client.post("/api/v1/labels", headers=ann, json=body)
    assert first.status_code == 201 and first.json()["duplicate"] is False
    again = client.post("/api/v1/labels", headers=ann, json=body)
    assert again.status_code == 200 and again.json() == {"label_id": first.json()["label_id"], "duplicate": True}
    conflict = client.post("/api/v1/labels", headers=ann, json={**body, "submission_id": "22222222-bbbb"})
    assert conflict.status_code == 409
    # bob has not been served that item (his queue is his own): not found for him.
    assert client.post("/api/v1/labels", headers=bob, json={**body, "submission_id": "33333333"}).status_code == 404
    assert client.get("/api/v1/progress", headers=bob).json() == {"done": 0, "remaining": 4}
    assert client.get("/api/v1/progress", headers=ann).json() == {"done": 1, "remaining": 3}
    nxt = client.get("/api/v1/next", headers=ann).json()["item"]["id"]
    cases = [
        ({"item_id": nxt, "submission_id": "44444444", "answer": {"choice": "maybe"}}, 422, "answer.choice"),
        ({"item_id": nxt, "submission_id": "44444444", "answer": {"choice": "A", "comment": "x" * 3000}}, 422,
         "answer.comment"),
        ({"item_id": nxt, "submission_id": "no", "answer": {"choice": "A"}}, 422, "submission_id"),
        ({"item_id": 10**12, "submission_id": "44444444", "answer": {"choice": "A"}}, 404, "not in your queue"),
        ({"item_id": "1; DROP TABLE", "submission_id": "44444444", "answer": {"choice": "A"}}, 422, "item_id"),
        ({"item_id": nxt, "submission_id": "44444444", "answer": {"choice": "A"}, "extra": 1}, 422, "unknown fields"),
    ]
    for payload, status, message in cases:
        r = client.post("/api/v1/labels", headers=ann, json=payload)
        assert r.status_code == status and message in r.json()["detail"], (payload, r.text)
    malformed = client.post("/api/v1/labels", headers={**ann, "content-type": "application/json"}, content=b"{nope")
    assert malformed.status_code == 400
    superscript = client.post("/api/v1/labels", headers=ann,
                              json={"item_id": "²", "submission_id": "44444444", "answer": {"choice": "A"}})
    assert superscript.status_code == 422 and "item_id" in superscript.json()["detail"]  # "²".isdigit(), not an int
    for raw in (b'{"item_id": ' + b"9" * 5000 + b', "submission_id": "44444444", "answer": {"choice": "A"}}',
                b'{"item_id": 1, "submission_id": "44444444", "answer": ' + b"[" * 5000 + b"]" * 5000 + b"}"):
        r = client.post("/api/v1/labels", headers={**ann, "content-type": "application/json"}, content=raw)
        assert r.status_code == 400 and "JSON object" in r.json()["detail"], r.text[:200]
    assert client.post("/api/v1/labels", headers=ann, json=[1, 2]).status_code == 400
    assert studio.labels() == 1


def test_oversized_and_unsized_bodies_are_refused_before_parsing(studio):
    client = studio.client()
    dee = _bearer(studio.tokens["dee"])
    item = client.get("/api/v1/next", headers=dee).json()["item"]
    huge = client.post("/api/v1/labels", headers=dee, json={"item_id": item["id"], "submission_id": "55555555",
                                                           "answer": {"text": "x" * 300_000}})
    assert huge.status_code == 413
    long = client.post("/api/v1/labels", headers=dee, json={"item_id": item["id"], "submission_id": "55555555",
                                                           "answer": {"text": "x" * 25_000}})
    assert long.status_code == 422 and "answer.text" in long.json()["detail"]

    def chunks():
        yield b'{"item_id": 1}'

    unsized = client.post("/api/v1/labels", headers=dee, content=chunks())
    assert unsized.status_code == 411
    assert studio.labels() == 0
    ok = client.post("/api/v1/labels", headers=dee, json={"item_id": item["id"], "submission_id": "55555555",
                                                         "answer": {"text": "A good answer."}})
    assert ok.status_code == 201


def test_a_restart_keeps_labels_sessions_and_forms(studio):
    client = studio.client()
    _login(client, studio.tokens["ann"])
    page = client.get("/label")
    form = {**_form(page), "choice": "A"}
    assert client.post("/label", data=form).status_code == 303
    studio.engine.dispose()
    # A new server process on the same database: same labels, the browser's cookies and forms still work.
    engine, sessions = open_db(studio.url)
    try:
        restarted = Studio(studio.url, sessions, engine, studio.tokens, studio.admin).client()
        restarted.cookies = client.cookies
        assert restarted.post("/label", data=form).status_code == 303  # the retry is recognized: one label
        assert "1 done · 3 left" in restarted.get("/label").text
        with sessions() as s:
            assert s.scalar(select(func.count(Label.id))) == 1
    finally:
        engine.dispose()


def test_static_files_headers_and_health(studio):
    client = studio.client()
    css = client.get("/static/studio.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/static/studio.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/../db.py").status_code == 404
    assert client.get("/static/other.js").status_code == 404
    page = client.get("/login")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    assert client.get("/healthz").json() == {"ok": True}
    assert client.get("/").headers["location"] == "/login"
    assert client.get("/docs").status_code == 404  # no API explorer pulling scripts from a CDN


def test_no_asset_comes_from_another_site():
    root = Path(__file__).resolve().parents[2] / "src" / "superalign" / "studio"
    for path in [*root.glob("templates/*.html"), *root.glob("static/*")]:
        text = path.read_text()
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text), path
        assert "@import" not in text and "url(" not in text, path


# Malformed values for every field of a label, by task: each must be a 4xx with a message and write nothing.
MALFORMED_COMMON = [("item_id", v) for v in ("²", "٣", "1.5", 1.5, True, None, [], {}, -1, "")] + \
    [("submission_id", v) for v in ("", "x", "ü" * 10, 12345678, None, "0" * 200)] + \
    [("answer", v) for v in (None, [], "A", 1, True)] + \
    [("answer.comment", v) for v in (1, None, ["x"], "x" * 5000)]
MALFORMED = {
    "pairwise": [("answer.choice", v) for v in ("a", "AB", 1, None, True, "")]
    + [("answer.confidence", v) for v in (True, "0.9", 0.4, 1.5, [0.9], "nan")],
    "rating": [("answer.rating", v) for v in (True, "3", 3.0, 0, 6, None, "²", [3])],
    "flaw": [("answer.flaws", v) for v in ("[]", {}, [1], [{"start": "0", "end": 3, "category": "factual error",
                                                              "severity": "major"}],
                                           [{"start": 0, "end": 3, "category": "made up", "severity": "major"}],
                                           [{"start": 5, "end": 3, "category": "factual error", "severity": "major"}],
                                           [{"start": 0, "end": 3, "category": "factual error", "severity": "major",
                                             "extra": 1}])],
    "demonstration": [("answer.text", v) for v in ("", "   \n\t ", None, 1, True, ["text"])],
}
GOOD = {"pairwise": {"choice": "A", "confidence": 0.75}, "rating": {"rating": 3},
        "flaw": {"flaws": [{"start": 0, "end": 3, "category": "factual error", "severity": "major"}]},
        "demonstration": {"text": "Jupiter is the largest planet."}}


@pytest.mark.parametrize("task", list(MALFORMED))
def test_every_api_field_refuses_malformed_values_and_writes_nothing(studio, task):
    with studio.sessions() as s:
        spec = ItemSpec(key="k0", task_id="k0", prompt=PROMPT, response_a="Saturn is the largest planet.",
                        response_b="Jupiter is." if task == "pairwise" else None)
        campaign = store.create_campaign(s, f"table-{task}", CampaignConfig(task=task, scale=5), [spec])
        token = store.add_labeler(s, campaign, "tia")[1]
    client, headers = studio.client(), _bearer(token)
    item_id = client.get("/api/v1/next", headers=headers).json()["item"]["id"]
    before = studio.labels()
    for field, value in MALFORMED_COMMON + MALFORMED[task]:
        body = {"item_id": item_id, "submission_id": "5" * 16, "answer": dict(GOOD[task])}
        if field.startswith("answer."):
            body["answer"][field.split(".", 1)[1]] = value
        else:
            body[field] = value
        r = client.post("/api/v1/labels", headers=headers, json=body)
        assert 400 <= r.status_code < 500 and r.json().get("detail"), (field, value, r.status_code, r.text[:200])
        assert studio.labels() == before, (field, value)
    for raw in (b'{"item_id": ' + b"9" * 5000 + b"}", b"[" * 3000 + b"]" * 3000, b'{"item_id": 1e999}',
                json.dumps({"item_id": item_id, "submission_id": "5" * 16,  # a lone surrogate, JSON-escaped
                            "answer": {**GOOD[task], "comment": "\ud800"}}).encode()):
        r = client.post("/api/v1/labels", headers={**headers, "content-type": "application/json"}, content=raw)
        assert 400 <= r.status_code < 500, (raw[:40], r.status_code)
    assert studio.labels() == before
    ok = client.post("/api/v1/labels", headers=headers, json={"item_id": item_id, "submission_id": "6" * 16,
                                                               "answer": GOOD[task]})
    assert ok.status_code == 201 and studio.labels() == before + 1  # the table's premise: the good answer passes


def test_an_item_that_cannot_be_shown_is_skipped_and_reported(studio):
    """Issue 16 item 1: an item with a lone surrogate (stored before `campaign create` refused them) answered 500
    on /label and /api/v1/next forever, the same item served again each time; now it leaves the queue, the
    labeler gets the next item, and the admin sees which item and why."""
    bad = ItemSpec(key="bad", task_id="t0", prompt=[{"role": "user", "content": "Q \ud800"}], response_a="a",
                   response_b="b")
    good = ItemSpec(key="good", task_id="t1", prompt=PROMPT, response_a="Jupiter", response_b="Saturn")
    shapeless = ItemSpec(key="shapeless", task_id="t2", prompt=[{"x": "y"}], response_a="c", response_b="d")
    with studio.sessions() as s:
        broken = store.create_campaign(s, "broken", CampaignConfig(task="pairwise", gold_fraction=0, labels_per_item=2),
                                       [bad, shapeless, good])
        tokens = [store.add_labeler(s, broken, name)[1] for name in ("lee", "max")]
        # max already holds the bad item open (served before this fix): that must not trap him either.
        stuck = store._serve(s, store.find_labeler(s, tokens[1]), 1.0)
        assert stuck.item.key == "bad"
    client = studio.client()
    _login(client, tokens[0])
    page = client.get("/label")
    assert page.status_code == 200 and "Jupiter" in page.text and "0 done · 1 left" in page.text
    item = client.get("/api/v1/next", headers=_bearer(tokens[1])).json()["item"]
    assert item["response_a"] == "Jupiter"
    with studio.sessions() as s:
        campaign = store.get_campaign(s, "broken")
        assert store.counts(s, campaign).unrenderable == 2
        reasons = dict(store.unrenderable(s, campaign))
    assert "surrogates not allowed" in reasons["bad"] and "prompt: message 0" in reasons["shapeless"]
    admin = studio.client()
    _login(admin, studio.admin, "/admin/login")
    section = admin.get("/admin").text.split('id="campaign-broken"')[1].split("</section>")[0]
    assert 'data-unrenderable="2"' in section and "<code>bad</code>" in section
    summary = admin.get("/api/v1/admin/campaigns", headers=_bearer(studio.admin)).json()
    assert [x["item"] for x in next(c for c in summary if c["name"] == "broken")["unrenderable"]] == ["bad",
                                                                                                    "shapeless"]


def _cookie(client, name: str) -> str | None:
    return client.cookies.get(name)


def test_sessions_are_server_side_rotated_ended_and_expire(studio):
    """Issue 16 item 7: the cookie was the raw invitation token, logout only deleted it (a copy kept working),
    the session id was not rotated at login and a value chosen by an attacker was accepted."""
    client = studio.client()
    before = (client.get("/login"), _cookie(client, "sa_session"))[1]
    assert _login(client, studio.tokens["ann"]).status_code == 303
    cookie = _cookie(client, "sa_labeler")
    assert cookie and cookie != studio.tokens["ann"]  # a session id, not the token
    assert _cookie(client, "sa_session") not in (None, before)  # rotated at login

    def signed_in(value: str) -> bool:
        other = studio.client()
        other.cookies.set("sa_labeler", value)
        return other.get("/label").status_code == 200

    assert signed_in(cookie)  # a copy works while the session lives...
    assert not signed_in(studio.tokens["ann"])  # ...the token itself is no session
    assert not signed_in("A" * 43)  # nor is a value the attacker made up
    page = client.get("/label")
    assert client.post("/logout", data={"csrf": _csrf(page)}).status_code == 303
    assert not signed_in(cookie)  # logout ended it on the server: the copy stops working
    # Expiry: idle too long, or open too long however busy; a re-issued token ends its sessions.
    for age in ({"seen_at": -store.SESSION_IDLE - 1}, {"created_at": -store.SESSION_MAX - 1}):
        client = studio.client()
        _login(client, studio.tokens["bob"])
        cookie = _cookie(client, "sa_labeler")
        assert signed_in(cookie)
        with studio.sessions() as s:
            row = s.get(WebSession, security.hash_token(cookie))
            for field, delta in age.items():
                setattr(row, field, getattr(row, field) + delta)
            s.commit()
        assert not signed_in(cookie) and client.get("/label").headers["location"] == "/login"
    client = studio.client()
    _login(client, studio.tokens["bob"])
    assert client.get("/label").status_code == 200
    with studio.sessions() as s:
        store.reissue_token(s, store.find_labeler(s, studio.tokens["bob"]))
    assert client.get("/label").headers["location"] == "/login"


def test_admin_sessions_end_at_logout_and_with_a_new_admin_token(studio):
    admin = studio.client()
    _login(admin, studio.admin, "/admin/login")
    cookie = _cookie(admin, "sa_admin")
    assert cookie != studio.admin and admin.get("/admin").status_code == 200
    copy = studio.client()
    copy.cookies.set("sa_admin", studio.admin)  # the admin token is no session either
    assert copy.get("/admin").headers["location"] == "/admin/login"
    copy.cookies.set("sa_admin", cookie)
    assert copy.get("/admin").status_code == 200
    assert admin.post("/admin/logout", data={"csrf": _csrf(admin.get("/admin"))}).status_code == 303
    assert copy.get("/admin").headers["location"] == "/admin/login"
    _login(admin, studio.admin, "/admin/login")
    with studio.sessions() as s:
        store.issue_admin_token(s)  # `superalign studio admin-token`: the old token and its sessions end
    assert admin.get("/admin").headers["location"] == "/admin/login"
