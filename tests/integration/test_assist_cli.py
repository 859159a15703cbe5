"""The assist stage end to end on a tiny model, then an assistance study in the studio from its records, scored by
the same code as the simulated judges; `superalign critique` and `superalign debate` with scripted chat roles; bad
input stopped in one line."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from superalign.records import Critique, DebateTranscript, Flaw, Judgement, Metric, read_jsonl
from superalign.studio import store
from superalign.studio.db import open_db
from tests.integration.test_cli import superalign
from tests.integration.test_studio_cli import _ok, studio


def _label(db, campaign: str, answer) -> int:
    """Stand-in for people: each labeler labels their whole queue with ``answer(item, assisted)``."""
    from sqlalchemy import select

    from superalign.studio.db import Labeler

    engine, sessions = open_db(db)
    n = 0
    try:
        with sessions() as s:
            c = store.get_campaign(s, campaign)
            config = store.campaign_config(c)
            for labeler in s.scalars(select(Labeler).where(Labeler.campaign_id == c.id)):
                while (served := store.next_item(s, labeler)) is not None:
                    item = served.item
                    assisted = store.assisted_for(config, labeler.id, item)
                    store.submit(s, labeler, item.id, f"sub-{labeler.id}-{item.id:06d}", answer(item, assisted))
                    n += 1
    finally:
        engine.dispose()
    return n


def test_the_assist_stage_and_a_studio_assistance_study_scored_by_the_same_code(tmp_path):
    proc = superalign("assist", "--profile", "smoke", "--device", "cpu", "--out", "runs", home=tmp_path / "home",
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")]  # .cache beside it
    records = read_jsonl(run / "records" / "assist.jsonl")
    kinds = {type(r) for r in records}
    assert {Critique, DebateTranscript, Judgement, Flaw} <= kinds
    metrics = {m.name for m in read_jsonl(run / "metrics.jsonl", Metric)}
    assert {"judge.unaided.found", "judge.oracle.uplift", "accuracy.naive.sim:skill=0.5",
            "accuracy.debate.oracle.tiny-llama"} <= metrics
    html = (run / "report.html").read_text()
    assert "Critiques: flaws found with and without them" in html and "Debate: a judge without the passage" in html
    assert "Judge accuracy against debater skill" in html

    # Flaw items from the critiques: people mark the planted flaw when the critique points at it, else nothing.
    out = _ok(studio("studio", "campaign", "create", "flaws", "--task", "flaw", "--from", str(run), "--gold-fraction",
                     "0", "--labels-per-item", "2", cwd=tmp_path))
    assert "campaign flaws: 8 flaw items" in out
    _ok(studio("studio", "labeler", "add", "flaws", "ann", "cy", cwd=tmp_path))

    def mark(item, assisted):
        spans = item.truth["spans"]
        if assisted and spans:
            return {"flaws": [{"start": spans[0][0], "end": spans[0][1], "category": "factual error",
                               "severity": "major"}]}
        return {"flaws": []}

    assert _label(tmp_path / "studio.db", "flaws", mark) == 16
    _ok(studio("studio", "export", "flaws", "--out", "flaws.jsonl", cwd=tmp_path))
    scored = json.loads(_ok(studio("critique", "score", "flaws.jsonl", "--json", cwd=tmp_path)))
    by = {m["name"]: m["value"] for m in scored}
    assert by["judge.unaided.found"] == 0.0 and by["judge.tiny-llama.found"] == 1.0  # both conditions occurred
    assert by["judge.tiny-llama.uplift"] == 1.0

    # Debate items: people told by a debate pick the right answer, alone they pick A.
    out = _ok(studio("studio", "campaign", "create", "debates", "--task", "pairwise", "--from", str(run),
                     "--gold-fraction", "0", "--limit", "6", cwd=tmp_path))
    _ok(studio("studio", "labeler", "add", "debates", "bo", cwd=tmp_path))
    assert _label(tmp_path / "studio.db", "debates",
                  lambda item, assisted: {"choice": item.truth["choice"] if assisted else "A"}) == 6
    _ok(studio("studio", "export", "debates", "--out", "debates.jsonl", cwd=tmp_path))
    scored = json.loads(_ok(studio("debate", "score", "debates.jsonl", "--json", cwd=tmp_path)))
    assisted = [m for m in scored if m["meta"]["protocol"] != "naive"]
    assert assisted and all(m["value"] == 1.0 for m in assisted)


class _Endpoint(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that answers every chat with malformed JSON: a judge that never answers."""

    def do_POST(self):  # noqa: N802 - the handler's name
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"choices": []}')

    def log_message(self, *args):
        pass


def test_debate_with_a_broken_endpoint_judge_records_failures_never_verdicts(tmp_path):
    server = HTTPServer(("127.0.0.1", 0), _Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        proc = superalign("debate", "tiny-llama", "--n-questions", "3", "--rounds", "1", "--best-of", "1",
                          "--no-oracle", "--judges", "simulated", "--judge", url, "--judge-model", "m", "--out", "out",
                          "--device", "cpu", home=tmp_path / "home", cwd=tmp_path)
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr
    judgements = [r for r in read_jsonl(tmp_path / "out" / "debate.jsonl") if isinstance(r, Judgement)]
    broken = [j for j in judgements if j.judge == "m"]
    assert broken and all(j.verdict == "failed" and "malformed" in j.meta["error"] for j in broken)
    assert "accuracy.naive.m" not in proc.stdout  # no accuracy from failures
    assert "accuracy.naive.sim:skill=0.5" in proc.stdout


def test_critique_command_with_the_oracle_only(tmp_path):
    proc = superalign("critique", "tiny-llama", "--critics", "oracle", "--n-test", "8", "--out", "out", "--device",
                      "cpu", home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "critique.oracle.found" in proc.stdout and (tmp_path / "out" / "critique.jsonl").is_file()


def test_bad_input_is_one_line_before_any_work(tmp_path):
    for args, message in ((["critique", "tiny-llama", "--critics", "gpt"], "unknown critics gpt"),
                          (["critique", "tiny-llama", "--kinds", "poems"], "unknown flaw kinds poems"),
                          (["critique", "tiny-llama", "--critic", "http://localhost:9/v1"], "--critic-model"),
                          (["critique", "score", "missing.jsonl"], "give a records file"),
                          (["debate", "tiny-llama", "--protocols", "shouting"], "unknown protocols shouting"),
                          (["debate", "tiny-llama", "--best-of", "one"], "--best-of one"),
                          (["debate", "tiny-llama", "--judge", "http://localhost:9/v1"], "--judge-model"),
                          (["assist", "--profile", "smoke", "--set", "assist.critique.n_test=4", "--set",
                            "assist.critique.flawed_fraction=0.9",
                            "--set", "assist.critique.kinds=[fact]"], "too few flawed or clean")):
        proc = superalign(*args, home=tmp_path / "home", cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1
