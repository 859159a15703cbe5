"""The studio in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against a real server.

A labeler opens their invitation link, labels comparisons with the keyboard (one of them with an AI
critique), marks a flaw span with the mouse, and the admin dashboard then shows the counts. A screenshot
of each page goes to ``test-artifacts/studio/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from superalign.records import (Demonstration, Flaw, Judgement, Preference, ResearchFinding, read_jsonl,
                                write_jsonl)
from tests.conftest import free_port

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "studio"
FLAWED = "The Eiffel Tower is in Berlin and was finished in 1889."
PROMPT = "Where is the Eiffel Tower?"


def _chromium() -> str:
    for candidate in (os.environ.get("SUPERALIGN_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.skip("no Chromium: install Debian's chromium package (`.ci/run` does) or set SUPERALIGN_CHROMIUM")


def _cli(*args: str, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "superalign", "studio", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A studio with a campaign of each task, served by `superalign studio serve` on a free port; each test
    labels its own campaigns, so they do not depend on each other's order."""
    tmp_path = tmp_path_factory.mktemp("studio-browser")
    items = [
        {"type": "studio_item", "task_id": "q1", "prompt": PROMPT, "responses": ["In Paris.", "In Rome."],
         "critique": "Response B is wrong: the Eiffel Tower stands in Paris."},
        {"type": "studio_item", "task_id": "q2", "prompt": "Say hello politely.", "responses": ["Hello!", "Go away."]},
        {"type": "studio_item", "task_id": "f1", "prompt": PROMPT, "responses": [FLAWED]},
        {"type": "studio_item", "task_id": "w1", "prompt": "Write a two-line poem about tea.", "responses": []},
    ]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(x) + "\n" for x in items))
    write_jsonl(tmp_path / "findings.jsonl", [ResearchFinding(
        id="research-0-step3", claim="the confidence loss moves PGR by +0.120", idea={"methods": "confidence"},
        objective="PGR", search_seeds=[0, 1, 2], search_gain=0.12, search_ci=[0.02, 0.22], fresh_seeds=[1000, 1001, 1002],
        fresh_gain=0.01, fresh_ci=[-0.08, 0.1], held=False, cost={"runs": 45})])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db = str(tmp_path / "studio.db")
    _cli("campaign", "create", "compare", "--task", "pairwise", "--from", "items.jsonl", "--assist", "all",
         "--db", db, cwd=tmp_path)
    _cli("campaign", "create", "flaws", "--task", "flaw", "--from", "items.jsonl", "--db", db, cwd=tmp_path)
    _cli("campaign", "create", "ratings", "--task", "rating", "--scale", "5", "--from", "items.jsonl", "--db", db,
         cwd=tmp_path)
    _cli("campaign", "create", "demos", "--task", "demonstration", "--from", "items.jsonl", "--db", db, cwd=tmp_path)
    _cli("campaign", "create", "twice", "--task", "pairwise", "--from", "items.jsonl", "--db", db, cwd=tmp_path)
    _cli("campaign", "create", "reviews", "--task", "review", "--from", "findings.jsonl", "--db", db, cwd=tmp_path)
    invites = {}
    for campaign in ("compare", "flaws", "ratings", "demos", "twice", "reviews"):
        name, url = _cli("labeler", "add", campaign, "alice", "--base-url", base, "--db", db,
                         cwd=tmp_path).split()
        invites[campaign] = url
    admin = _cli("admin-token", "--db", db, cwd=tmp_path).strip()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "superalign", "studio", "serve", "--db", db, "--port", str(port),
                             "--log-level", "warning"], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail(f"the studio did not start: {(tmp_path / 'server.log').read_text()}")
        yield {"base": base, "invites": invites, "admin": admin, "db": db, "cwd": tmp_path}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture
def page():
    playwright = pytest.importorskip("playwright.sync_api")
    executable = _chromium()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda err: errors.append(str(err)))
        pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        yield pg
        browser.close()
        assert not errors, errors  # no script errors and no CSP violations on any page


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _submit(page, key: str) -> None:
    """Press the submitting key and wait for the next page (Post/Redirect/Get lands on /label?saved=1)."""
    with page.expect_navigation(url=re.compile(r".*/label\?saved=1$")):
        page.keyboard.press(key)


def _select_text(page, selector: str, text: str) -> None:
    """Select ``text`` inside ``selector`` by dragging the mouse over it, as a person would."""
    box = page.evaluate("""([selector, text]) => {
        const el = document.querySelector(selector);
        const node = el.firstChild, start = node.textContent.indexOf(text), end = start + text.length;
        const rect = (i) => { const r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + 1);
                              return r.getBoundingClientRect(); };
        const a = rect(start), b = rect(end - 1);
        return {x0: a.left + 1, y0: a.top + a.height / 2, x1: b.right - 1, y1: b.top + b.height / 2};
    }""", [selector, text])
    page.mouse.move(box["x0"], box["y0"])
    page.mouse.down()
    page.mouse.move(box["x1"], box["y1"], steps=8)
    page.mouse.up()


def test_a_labeler_labels_with_the_keyboard_marks_a_flaw_and_the_admin_sees_it(server, page):
    base = server["base"]
    # --- the invitation link signs the labeler in (the token rides in the URL fragment) ---
    page.goto(base + "/login")
    _shot(page, "01-login")
    page.goto(server["invites"]["compare"])
    page.wait_for_url(base + "/label")
    assert "token" not in page.url
    assert page.locator("#progress-text").inner_text() == "0 done · 2 left"

    # --- two comparisons, keyboard only: 1 / 2 choose, Enter submits ---
    saw_critique = False
    for n in range(2):
        response_a = page.locator("#response-a").inner_text()
        if response_a == "In Paris.":
            critique = page.locator("#assistance")
            assert critique.is_visible() and "stands in Paris" in critique.inner_text()
            saw_critique = True
            _shot(page, "02-pairwise-with-critique")
            page.keyboard.press("2")
            assert page.locator('input[name="choice"][value="B"]').is_checked()
            page.keyboard.press("1")  # changed my mind
            page.keyboard.press("ArrowUp")  # a little sure -> fairly sure
            page.keyboard.press("ArrowUp")
        else:
            assert page.locator("#assistance").count() == 0  # no critique on this item
            _shot(page, "03-pairwise")
            page.keyboard.press("1")
        assert page.locator('input[name="choice"][value="A"]').is_checked()
        _submit(page, "Enter")
        assert page.locator("#progress-text").inner_text().startswith(f"{n + 1} done")
    assert saw_critique
    _shot(page, "04-done")
    assert "All done" in page.content()

    # --- flaw marking: drag over a span, pick category and severity, add it with f, submit with Enter ---
    page.goto(server["invites"]["flaws"])
    page.wait_for_url(base + "/label")
    page.select_option("#flaw-category", "factual error")
    page.select_option("#flaw-severity", "major")
    page.fill("#flaw-comment", "It is in Paris.")
    _select_text(page, "#response", "in Berlin")  # the drag also takes the focus off the comment box
    assert page.locator("#selection").inner_text() == "Selected: “in Berlin”"
    page.keyboard.press("f")
    assert page.locator("#flaw-list li").count() == 1
    assert "in Berlin" in page.locator("#flaw-list li").inner_text()
    _shot(page, "05-flaw-marked")
    _submit(page, "Enter")
    assert "All done" in page.content()

    # --- the admin dashboard shows the counts ---
    page.goto(base + "/admin")
    page.wait_for_url(base + "/admin/login")
    page.fill("#token", server["admin"])
    page.keyboard.press("Enter")
    page.wait_for_url(base + "/admin")
    compare = page.locator("#campaign-compare")
    assert compare.locator('td[data-count="labels"]').inner_text() == "2"
    assert compare.locator('td[data-count="items"]').inner_text() == "2"
    assert compare.locator('td[data-count="assisted_labels"]').inner_text() == "1"
    assert compare.locator('tr[data-labeler="alice"] td[data-field="labels"]').inner_text() == "2"
    assert page.locator('#campaign-flaws td[data-count="labels"]').inner_text() == "1"
    _shot(page, "06-admin-dashboard")

    # --- what was stored is what the labeler did ---
    out = server["cwd"]
    _cli("export", "compare", "--out", "compare.jsonl", "--db", server["db"], cwd=out)
    prefs = read_jsonl(out / "compare.jsonl")
    assert all(isinstance(p, Preference) for p in prefs) and len(prefs) == 2
    paris = next(p for p in prefs if p.task_id == "q1")
    assert paris.chosen == "In Paris." and paris.confidence == 0.75 and paris.meta["studio"]["assisted"]
    _cli("export", "flaws", "--out", "flaws.jsonl", "--db", server["db"], cwd=out)
    records = read_jsonl(out / "flaws.jsonl")
    (flaw,) = [r for r in records if isinstance(r, Flaw)]
    assert flaw.quote == "in Berlin" and FLAWED[flaw.start:flaw.end] == "in Berlin"
    assert (flaw.category, flaw.severity, flaw.comment) == ("factual error", "major", "It is in Paris.")
    assert [r.verdict for r in records if isinstance(r, Judgement)] == ["flawed"]
    for name in ("01-login", "02-pairwise-with-critique", "03-pairwise", "04-done", "05-flaw-marked",
                 "06-admin-dashboard"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 1000


def test_double_submit_in_the_browser_records_one_label(server, page):
    base = server["base"]
    page.goto(server["invites"]["twice"])
    page.wait_for_url(base + "/label")
    page.keyboard.press("2")
    # Two quick Enters: the form goes out once (and a retry would carry the same submission id).
    with page.expect_navigation(url=re.compile(r".*/label\?saved=1$")):
        page.keyboard.press("Enter")
        page.keyboard.press("Enter")
    assert page.locator("#progress-text").inner_text().startswith("1 done")
    out = server["cwd"]
    _cli("export", "twice", "--out", "one.jsonl", "--db", server["db"], cwd=out)
    assert len(read_jsonl(out / "one.jsonl")) == 1


def test_rating_with_a_digit_and_a_demonstration_with_ctrl_enter(server, page):
    base = server["base"]
    page.goto(server["invites"]["ratings"])
    page.wait_for_url(base + "/label")
    page.keyboard.press("4")
    assert page.locator('input[name="rating"][value="4"]').is_checked()
    _shot(page, "07-rating")
    _submit(page, "Enter")
    assert "All done" in page.content()

    page.goto(server["invites"]["demos"])
    page.wait_for_url(base + "/label")
    page.click("#text")
    page.keyboard.type("Steam curls from the cup,")
    page.keyboard.press("Enter")  # a new line in the text, not a submission
    page.keyboard.type("the afternoon slows down.")
    assert page.url == base + "/label"
    _shot(page, "08-demonstration")
    _submit(page, "Control+Enter")

    out = server["cwd"]
    _cli("export", "ratings", "--out", "ratings.jsonl", "--db", server["db"], cwd=out)
    (rating,) = read_jsonl(out / "ratings.jsonl")
    assert isinstance(rating, Judgement) and rating.verdict == "4" and rating.meta["scale"] == 5
    _cli("export", "demos", "--out", "demos.jsonl", "--db", server["db"], cwd=out)
    (demo,) = read_jsonl(out / "demos.jsonl")
    assert isinstance(demo, Demonstration)
    assert demo.response == "Steam curls from the cup,\nthe afternoon slows down." and demo.source == "human:alice"


def test_a_reviewer_rejects_a_research_finding_with_a_key_and_a_comment(server, page):
    base = server["base"]
    page.goto(server["invites"]["reviews"])
    page.wait_for_url(base + "/label")
    text = page.content()
    assert "the confidence loss moves PGR by +0.120" in text and "Held on fresh seeds: no" in text
    page.keyboard.press("2")
    assert page.locator('input[name="verdict"][value="reject"]').is_checked()
    page.fill('input[name="comment"]', "the gain did not hold on fresh seeds")
    _shot(page, "09-review")
    page.locator('input[name="verdict"][value="reject"]').focus()
    _submit(page, "Enter")
    assert "All done" in page.content()
    out = server["cwd"]
    _cli("export", "reviews", "--out", "reviews.jsonl", "--db", server["db"], cwd=out)
    (review,) = read_jsonl(out / "reviews.jsonl")
    assert isinstance(review, Judgement) and review.verdict == "reject" and review.meta["finding"] == "research-0-step3"
    assert review.meta["studio"]["comment"] == "the gain did not hold on fresh seeds"
