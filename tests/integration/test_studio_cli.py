"""`superalign studio ...` end to end: a study from pipeline records to an export the train stage trains on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from superalign.records import Evaluation, Preference, read_jsonl, write_jsonl
from superalign.studio import store
from superalign.studio.db import open_db


def studio(*args: str, cwd: Path, home: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SUPERALIGN_STUDIO_DB"}  # the default: ./studio.db
    env["SUPERALIGN_HOME"] = str(home or cwd / "home")
    return subprocess.run([sys.executable, "-m", "superalign", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _label_everything(db: Path, campaign: str, prefer) -> int:
    """Stand-in for people: every labeler labels their whole queue, choosing with ``prefer(a, b)``."""
    engine, sessions = open_db(db)
    n = 0
    try:
        with sessions() as s:
            c = store.get_campaign(s, campaign)
            from sqlalchemy import select

            from superalign.studio.db import Labeler

            for labeler in s.scalars(select(Labeler).where(Labeler.campaign_id == c.id)):
                while (served := store.next_item(s, labeler)) is not None:
                    item = served.item
                    store.submit(s, labeler, item.id, f"sub-{labeler.id}-{item.id:06d}",
                                 {"choice": prefer(item.response_a, item.response_b), "confidence": 0.9})
                    n += 1
    finally:
        engine.dispose()
    return n


def test_a_study_from_pipeline_records_trains_a_reward_model(tmp_path):
    # Pipeline records as a run directory holds them (the train stage writes preferences like these).
    prompts = [[{"role": "user", "content": f"Say something kind about topic {i}."}] for i in range(12)]
    prefs = [Preference(task_id=f"instruction-{i}", prompt=p, chosen="NO", rejected="a calm, kind answer",
                        labeler="sim:bt(T=0.1)") for i, p in enumerate(prompts)]
    write_jsonl(tmp_path / "runs" / "r0" / "records" / "train.jsonl", prefs)

    out = _ok(studio("studio", "campaign", "create", "kindness", "--task", "pairwise", "--from", "runs/r0",
                     "--labels-per-item", "2", cwd=tmp_path))
    assert "campaign kindness: 12 pairwise items (0 gold, 0 with assistance)" in out
    invites = _ok(studio("studio", "labeler", "add", "kindness", "ann", "ben", cwd=tmp_path)).splitlines()
    assert [line.split("\t")[0] for line in invites] == ["ann", "ben"]
    assert all(line.split("\t")[1].startswith("http://127.0.0.1:8765/login#token=") for line in invites)
    assert (tmp_path / "studio.db").is_file()  # the default database, in the working directory

    # People prefer the kind answer (the simulated labeler had it the other way round).
    assert _label_everything(tmp_path / "studio.db", "kindness", lambda a, b: "A" if "kind" in a else "B") == 24

    stats = json.loads(_ok(studio("studio", "stats", "kindness", "--json", cwd=tmp_path)))
    assert stats["counts"]["labels"] == 24 and stats["counts"]["complete_items"] == 12
    assert stats["quality"]["overlap_items"] == 12
    assert "agreement on 12 overlapping items" in _ok(studio("studio", "stats", "kindness", cwd=tmp_path))

    out = _ok(studio("studio", "export", "kindness", "--out", "export.jsonl", "--hf-dataset", "export-hf",
                     cwd=tmp_path))
    assert "24 records -> export.jsonl" in out
    exported = read_jsonl(tmp_path / "export.jsonl")
    assert len(exported) == 24 and all(isinstance(p, Preference) for p in exported)
    assert all(p.chosen == "a calm, kind answer" and p.labeler in ("human:ann", "human:ben") for p in exported)
    import datasets

    ds = datasets.load_from_disk(str(tmp_path / "export-hf"))
    assert len(ds) == 24 and {"prompt", "chosen", "rejected", "labeler", "meta"} <= set(ds.column_names)
    assert json.loads(ds[0]["meta"])["studio"]["campaign"] == "kindness"

    # The train stage's own command takes the export as it is.
    proc = studio("rlhf", "best-of-n", "--profile", "smoke", "--preferences", "export.jsonl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "runs").glob("smoke-*")
    metrics = json.loads((run_dir / "results.json").read_text())["metrics"]["train"]
    assert "reward_model.test_accuracy" in metrics and "best_of_n.gold" in metrics
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["train"]["preferences_file"] == str((tmp_path / "export.jsonl").resolve())

    # ...and that run's records feed the next campaign: its held-out evaluations pair up with known answers.
    evaluations = [r for r in read_jsonl(run_dir / "records" / "train.jsonl") if isinstance(r, Evaluation)]
    assert evaluations
    out = _ok(studio("studio", "campaign", "create", "heldout", "--task", "pairwise", "--from", str(run_dir),
                     "--gold-fraction", "0.5", cwd=tmp_path))
    assert "campaign heldout:" in out
    listing = _ok(studio("studio", "campaign", "list", cwd=tmp_path))
    assert "kindness\tpairwise\titems=12\tgold=0\tlabels=24" in listing and "heldout\tpairwise" in listing


def test_labelers_tokens_and_admin_token(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"type": "studio_item", "task_id": "x", "prompt": "p", "responses": ["r"]}) + "\n")
    db = str(tmp_path / "s.db")
    _ok(studio("studio", "campaign", "create", "rate", "--task", "rating", "--from", str(items), "--scale", "5",
               "--db", db, cwd=tmp_path))
    first = _ok(studio("studio", "labeler", "add", "rate", "ann", "--base-url", "https://studio.example/",
                       "--db", db, cwd=tmp_path)).split("\t")[1].strip()
    assert first.startswith("https://studio.example/login#token=")
    token = first.split("#token=")[1]
    engine, sessions = open_db(db)
    try:
        with sessions() as s:
            assert store.find_labeler(s, token).name == "ann"
        again = _ok(studio("studio", "labeler", "token", "rate", "ann", "--db", db, cwd=tmp_path))
        new = again.split("#token=")[1].strip()
        assert "revoked" in _ok(studio("studio", "labeler", "revoke", "rate", "ann", "--db", db, cwd=tmp_path))
        assert _ok(studio("studio", "labeler", "list", "rate", "--db", db, cwd=tmp_path)).strip() == "ann\trevoked"
        admin = _ok(studio("studio", "admin-token", "--db", db, cwd=tmp_path)).strip()
        with sessions() as s:
            assert store.find_labeler(s, token) is None and store.find_labeler(s, new) is None
            assert store.admin_ok(s, admin)
    finally:
        engine.dispose()


@pytest.mark.parametrize("args, message", [
    (["campaign", "create", "c", "--task", "pairwise", "--from", "nope.jsonl"], "nope.jsonl: no such file"),
    (["campaign", "create", "c", "--task", "pairwise", "--from", "bad.jsonl"], "bad.jsonl:1"),
    (["campaign", "create", "c", "--task", "rating", "--from", "bad.jsonl", "--scale", "50"], "scale"),
    # No database here: only serve and campaign create make one (a mistyped --db made an empty one before).
    (["labeler", "add", "ghost", "ann"], "no studio database at"),
    (["export", "ghost", "--out", "x.jsonl"], "no studio database at"),
    (["export", "ghost"], "--out FILE.jsonl and/or --hf-dataset DIR"),
    (["stats", "ghost", "--db", "postgresql://nobody@127.0.0.1:1/none"], "cannot open database"),
])
def test_mistakes_are_one_line_errors(tmp_path, args, message):
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    proc = studio("studio", *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "studio.db").exists()  # a mistake leaves no database behind


ITEM = '{"type": "studio_item", "task_id": "t", "prompt": "%s", "responses": ["a", "b"]}\n'


@pytest.mark.parametrize("content, message", [
    ((ITEM % "Q \\ud800").encode(), "items.jsonl:1: text with a lone surrogate (\\ud800)"),  # locked a labeler out
    (b'{"type": "studio_item", "task_id": "t\xff"}\n', "items.jsonl:1: not UTF-8 text"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "items.jsonl:1: not UTF-8 text"),
    (b'{"type": "studio_item", "task_id": "t", "n": ' + b"9" * 5000 + b"}\n", "more than 4,300 digits"),
    (b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
])
def test_campaign_create_refuses_bad_files_in_one_line(tmp_path, content, message):
    (tmp_path / "items.jsonl").write_bytes(content)
    proc = studio("studio", "campaign", "create", "c", "--task", "pairwise", "--from", "items.jsonl", cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_campaign_create_warns_on_responses_nobody_can_judge(tmp_path):
    """Issue 16 item 8: a tiny random model's records made items of blank lines and replacement characters,
    accepted silently; now creation warns (and --drop-unreadable leaves them out)."""
    prompt = [{"role": "user", "content": "Name a planet."}]
    evals = [Evaluation(stage="baseline", model="m", task_id=f"t{i}", kind="fact", category="c", prompt=prompt,
                        response=text, gold=1.0, passed=True)
             for i, text in enumerate(["Jupiter.", "\n\n\n", "w\ufffd&j\ufffd-", "Saturn is one."])]
    write_jsonl(tmp_path / "records.jsonl", evals)
    proc = studio("studio", "campaign", "create", "c", "--task", "rating", "--from", "records.jsonl", cwd=tmp_path)
    assert "campaign c: 4 rating items" in _ok(proc)
    assert ("warning: 2 of 4 items have a response nobody can judge (1 blank, 1 replacement or control characters;"
            in proc.stderr), proc.stderr
    proc = studio("studio", "campaign", "create", "d", "--task", "rating", "--from", "records.jsonl",
                  "--drop-unreadable", cwd=tmp_path)
    assert "campaign d: 2 rating items" in _ok(proc) and "dropped 2 item(s)" in proc.stderr


def test_export_needs_labels(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"type": "studio_item", "task_id": "x", "prompt": "p", "responses": ["a", "b"]}) + "\n")
    _ok(studio("studio", "campaign", "create", "c", "--task", "pairwise", "--from", str(items), cwd=tmp_path))
    proc = studio("studio", "export", "c", "--out", "x.jsonl", cwd=tmp_path)
    assert proc.returncode == 2 and "no labels to export yet" in proc.stderr


def test_serve_binds_loopback_unless_told_otherwise(tmp_path):
    from superalign.cli import build_parser

    assert build_parser().parse_args(["studio", "serve"]).host == "127.0.0.1"
    from tests.conftest import free_port

    port = free_port()
    env = {**os.environ, "SUPERALIGN_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "superalign", "studio", "serve", "--db", str(tmp_path / "s.db"),
                             "--host", "0.0.0.0", "--port", str(port), "--log-level", "warning"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        admin_line = proc.stdout.readline()
        warning = proc.stderr.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert admin_line.startswith("admin token (shown once")
    assert "reachable from other machines" in warning
