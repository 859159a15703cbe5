"""Studio operations on a real database (SQLite and PostgreSQL): queues, assistance assignment, idempotent
submission, validation without partial writes, tokens, export to records."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from superalign.records import Demonstration, Flaw, Judgement, Preference, read_jsonl, write_jsonl
from superalign.rlhf.feedback import load_preferences
from superalign.studio import StudioError, store
from superalign.studio.db import Assignment, Label, Labeler, open_db
from superalign.studio.items import CampaignConfig, ItemSpec

PROMPT = [{"role": "user", "content": "Answer briefly."}]


@pytest.fixture
def sessions(studio_db_url):
    engine, factory = open_db(studio_db_url)
    yield factory
    engine.dispose()


def _items(n: int, task: str = "pairwise", gold: int = 0, assisted: int = 0) -> list[ItemSpec]:
    out = []
    for i in range(n):
        truth = {"pairwise": {"choice": "A"}, "rating": {"rating": 3, "tolerance": 0},
                 "flaw": {"flawed": True}, "demonstration": None}[task] if i < gold else None
        out.append(ItemSpec(key=f"k{i}", task_id=f"t{i}", prompt=PROMPT,
                            response_a=None if task == "demonstration" else f"first answer {i}",
                            response_b=f"second answer {i}" if task == "pairwise" else None,
                            assistance={"kind": "critique", "text": f"critique {i}"} if i < assisted else None,
                            truth=truth, gold=i < gold, meta={"n": i}))
    return out


def _campaign(s, name="c", n=4, gold=0, assisted=0, **config):
    config.setdefault("task", "pairwise")
    cfg = CampaignConfig(gold_fraction=0.0, **config)
    return store.create_campaign(s, name, cfg, _items(n, cfg.task, gold, assisted))


def _label_count(s) -> int:
    return s.scalar(select(func.count(Label.id)))


def _label_all(s, labeler, answer=None, prefix="sub"):
    n = 0
    while (served := store.next_item(s, labeler)) is not None:
        store.submit(s, labeler, served.item.id, f"{prefix}-{labeler.id}-{served.item.id:04d}",
                     answer or {"choice": "A", "confidence": 0.9})
        n += 1
    return n


def test_queue_respects_labels_per_item_and_shows_gold_to_everyone(sessions):
    with sessions() as s:
        c = _campaign(s, n=4, gold=1, labels_per_item=2)
        (l1, _), (l2, _), (l3, _) = (store.add_labeler(s, c, n) for n in ("ann", "bob", "cy"))
        assert store.progress(s, l1).remaining == 4
        assert _label_all(s, l1) == 4 and _label_all(s, l2) == 4
        # Each non-gold item has its 2 labels: the third labeler gets only the gold item.
        assert store.progress(s, l3).remaining == 1
        served = store.next_item(s, l3)
        assert served.item.gold
        assert store.progress(s, l1).done == 4 and store.progress(s, l1).remaining == 0
        assert store.counts(s, c).complete_items == 3 and store.counts(s, c).labels == 8


def test_reload_serves_the_same_item_and_leases_expire(sessions):
    with sessions() as s:
        c = _campaign(s, n=2, labels_per_item=1, lease_minutes=10)
        (ann, _), (bob, _) = store.add_labeler(s, c, "ann"), store.add_labeler(s, c, "bob")
        first = store.next_item(s, ann, now=1000.0)
        assert store.next_item(s, ann, now=1001.0).item.id == first.item.id  # a reload: same item
        other = store.next_item(s, bob, now=1002.0)
        assert other.item.id != first.item.id
        store.submit(s, bob, other.item.id, "bob-submission-1", {"choice": "B"}, now=1003.0)
        assert store.next_item(s, bob, now=1004.0) is None  # ann holds the other item
        # ann walked away: after the lease, bob may take it.
        assert store.next_item(s, bob, now=1000.0 + 10 * 60 + 1).item.id == first.item.id


def test_assistance_is_randomized_per_labeler_and_item_and_recorded(sessions):
    with sessions() as s:
        c = _campaign(s, n=40, assisted=30, labels_per_item=10, assist="random", assist_p=0.5, seed=3)
        labelers = [store.add_labeler(s, c, f"l{i}")[0] for i in range(8)]
        for lab in labelers:
            _label_all(s, lab)
        rows = s.execute(select(Assignment.assisted, Assignment.item_id, Assignment.labeler_id)).all()
        labels = {(lb.labeler_id, lb.item_id): lb.assisted for lb in s.scalars(select(Label))}
    assisted_items = {r.item_id for r in rows if r.assisted}
    n_with = sum(1 for r in rows if r.item_id <= 30)  # the first 30 items carry a critique
    share = sum(r.assisted for r in rows) / n_with
    assert 0.35 < share < 0.65
    assert all(i <= 30 for i in assisted_items)  # never assisted without assistance content
    # The treatment is recorded with each label, and it is the seeded coin (reproducible).
    assert all(labels[(r.labeler_id, r.item_id)] == r.assisted for r in rows)
    # Same item, different labelers: the coin differs (it is per labeler x item, not per item).
    per_item = {}
    for r in rows:
        per_item.setdefault(r.item_id, set()).add(r.assisted)
    assert any(len(v) == 2 for k, v in per_item.items() if k <= 30)


@pytest.mark.parametrize("mode, expected", [("none", 0), ("all", 3)])
def test_assist_none_and_all(sessions, mode, expected):
    with sessions() as s:
        c = _campaign(s, n=5, assisted=3, assist=mode)
        lab, _ = store.add_labeler(s, c, "ann")
        _label_all(s, lab)
        assert store.counts(s, c).assisted_labels == expected


def test_submission_is_idempotent_and_second_labels_are_refused(sessions):
    with sessions() as s:
        c = _campaign(s, n=2)
        lab, _ = store.add_labeler(s, c, "ann")
        item = store.next_item(s, lab).item
        first = store.submit(s, lab, item.id, "same-submission", {"choice": "A"})
        again = store.submit(s, lab, item.id, "same-submission", {"choice": "B"})  # a retry (body ignored)
        assert not first.duplicate and again.duplicate and again.label_id == first.label_id
        with pytest.raises(store.AlreadyLabeled, match=f"already labeled item {item.id}"):
            store.submit(s, lab, item.id, "another-submission", {"choice": "B"})
        nxt = store.next_item(s, lab).item
        with pytest.raises(store.InvalidInput, match="already used for another item"):
            store.submit(s, lab, nxt.id, "same-submission", {"choice": "A"})
        assert _label_count(s) == 1
        assert s.get(Label, first.label_id).answer["choice"] == "A"


def test_concurrent_duplicates_record_one_label(studio_db_url, sessions):
    with sessions() as s:
        c = _campaign(s, n=1)
        lab, _ = store.add_labeler(s, c, "ann")
        lab_id, item_id = lab.id, store.next_item(s, lab).item.id
    results, errors = [], []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()  # before touching the database: a SQLite transaction holds the write lock
        with sessions() as s:
            labeler = s.get(Labeler, lab_id)
            try:
                results.append(store.submit(s, labeler, item_id, "double-click-1", {"choice": "B"}))
            except Exception as err:  # noqa: BLE001 - reported below
                errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({r.label_id for r in results}) == 1 and sum(not r.duplicate for r in results) == 1
    with sessions() as s:
        assert _label_count(s) == 1


def test_items_outside_the_queue_are_refused(sessions):
    with sessions() as s:
        c1, c2 = _campaign(s, "one", n=3), _campaign(s, "two", n=3)
        ann, _ = store.add_labeler(s, c1, "ann")
        bob, _ = store.add_labeler(s, c2, "bob")
        bobs = store.next_item(s, bob).item
        store.next_item(s, ann)
        from superalign.studio.db import Item

        not_served = s.scalars(select(Item).where(Item.campaign_id == c1.id).order_by(Item.position)).all()[-1]
        for bad in (bobs.id, not_served.id, 99999, -1, 2**40, "7abc", None, True, 1.5):
            with pytest.raises((store.NotInQueue, store.InvalidInput)):
                store.submit(s, ann, bad, "submission-x1", {"choice": "A"})
        assert _label_count(s) == 0


@pytest.mark.parametrize("task, answer, message", [
    ("pairwise", {"choice": "C"}, "answer.choice"),
    ("pairwise", {"choice": "A", "confidence": 0.2}, "answer.confidence"),
    ("pairwise", {"choice": "tie", "confidence": 0.9}, "a tie has no preferred response"),
    ("pairwise", {"choice": "A", "sneaky": 1}, "answer.sneaky"),
    ("pairwise", {"choice": "A", "comment": "x" * 2001}, "answer.comment"),
    ("pairwise", ["A"], "expected an object"),
    ("rating", {"rating": 8}, "between 1 and 7"),
    ("rating", {"rating": "good"}, "answer.rating"),
    ("flaw", {"flaws": [{"start": 5, "end": 500, "category": "other", "severity": "minor"}]}, "not inside"),
    ("flaw", {"flaws": [{"start": 3, "end": 2, "category": "other", "severity": "minor"}]}, "not inside"),
    ("flaw", {"flaws": [{"start": 0, "end": 2, "category": "made up", "severity": "minor"}]}, "category"),
    ("flaw", {"flaws": [{"start": 0, "end": 2, "category": "other", "severity": "fatal"}]}, "severity"),
    ("flaw", {"flaws": [{"start": 0, "end": 2, "category": "other", "severity": "minor"}] * 51}, "answer.flaws"),
    ("demonstration", {"text": ""}, "answer.text"),
    ("demonstration", {"text": "x" * 20_001}, "answer.text"),
])
def test_invalid_answers_write_nothing(sessions, task, answer, message):
    with sessions() as s:
        c = _campaign(s, n=1, task=task)
        lab, _ = store.add_labeler(s, c, "ann")
        item = store.next_item(s, lab).item
        with pytest.raises(store.InvalidInput, match=message):
            store.submit(s, lab, item.id, "submission-1", answer)
        with pytest.raises(store.InvalidInput, match="submission_id"):
            store.submit(s, lab, item.id, "bad id!", answer)
        assert _label_count(s) == 0
        assert not s.scalars(select(Assignment)).one().done  # the item is still open for a valid answer


def test_tokens_find_only_active_labelers_and_the_latest_admin(sessions):
    with sessions() as s:
        c = _campaign(s)
        ann, token = store.add_labeler(s, c, "ann")
        assert store.find_labeler(s, token).id == ann.id
        assert store.find_labeler(s, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert ann.token_hash != token and token not in ann.token_hash  # stored hashed
        with pytest.raises(StudioError, match="already has a labeler"):
            store.add_labeler(s, c, "ann")
        store.revoke(s, ann)
        assert store.find_labeler(s, token) is None
        new = store.reissue_token(s, ann)
        assert store.find_labeler(s, new).id == ann.id and store.find_labeler(s, token) is None
        assert not store.has_admin_token(s) and not store.admin_ok(s, "x" * 43)
        old = store.issue_admin_token(s)
        latest = store.issue_admin_token(s)
        assert store.admin_ok(s, latest) and not store.admin_ok(s, old) and not store.admin_ok(s, new)


def test_campaign_names_and_gold_demonstrations_are_checked(sessions):
    with sessions() as s:
        _campaign(s, "taken")
        with pytest.raises(StudioError, match="already exists"):
            _campaign(s, "taken")
        with pytest.raises(StudioError, match="campaign name"):
            _campaign(s, "no spaces please")
        with pytest.raises(StudioError, match="no campaign named 'nope'.*taken"):
            store.get_campaign(s, "nope")
        bad = _items(1, "demonstration")
        bad[0].gold = True
        with pytest.raises(StudioError, match="cannot have gold"):
            store.create_campaign(s, "demo", CampaignConfig(task="demonstration"), bad)


def test_pairwise_export_is_what_the_train_stage_reads(sessions, tmp_path):
    with sessions() as s:
        c = _campaign(s, n=3, gold=1, labels_per_item=2)
        ann, _ = store.add_labeler(s, c, "ann")
        bob, _ = store.add_labeler(s, c, "bob")
        answers = iter([{"choice": "B", "confidence": 0.9}, {"choice": "tie"}, {"choice": "A"}])
        while (served := store.next_item(s, ann)) is not None:
            store.submit(s, ann, served.item.id, f"ann-sub-{served.item.id}", next(answers))
        _label_all(s, bob, {"choice": "B", "confidence": 0.6})  # bob misses the gold item (truth: A)
        records = store.export_records(s, c)
        assert len(records) == 6 and all(isinstance(r, Preference) for r in records)
        by = {(r.labeler, r.meta["studio"]["item"]): r for r in records}
        first = by[("human:ann", "k0")]  # ann's first answer was B on the gold item k0
        assert first.chosen == "second answer 0" and first.rejected == "first answer 0"
        assert first.confidence == 0.9 and not first.tie and first.prompt == PROMPT and first.task_id == "t0"
        assert first.meta["studio"]["gold"] and first.meta["studio"]["correct"] is False
        assert first.meta["n"] == 0  # the item's own metadata travels along
        tie = by[("human:ann", "k1")]
        assert tie.tie and tie.confidence == 0.5
        path = write_jsonl(tmp_path / "prefs.jsonl", records)
        assert len(load_preferences(path)) == 6  # the train stage's loader takes the export as is
        # Filters: drop gold items; drop labelers below a gold accuracy.
        assert len(store.export_records(s, c, include_gold=False)) == 4
        assert store.export_records(s, c, min_gold_accuracy=0.5) == []  # both missed the one gold item


def test_export_other_tasks(sessions, tmp_path):
    with sessions() as s:
        rating = _campaign(s, "rating", n=2, task="rating", scale=5, assisted=2, assist="all")
        lab, _ = store.add_labeler(s, rating, "ann")
        _label_all(s, lab, {"rating": 4})
        (j, _) = store.export_records(s, rating)
        assert isinstance(j, Judgement) and j.verdict == "4" and j.score == 4.0 and j.assisted == "critique"
        assert j.judge == "human:ann" and j.meta["scale"] == 5 and j.meta["task_id"].startswith("t")

        flaw = _campaign(s, "flaw", n=2, task="flaw")
        lab, _ = store.add_labeler(s, flaw, "ann")
        first = store.next_item(s, lab)
        store.submit(s, lab, first.item.id, "flaw-submission-1", {"flaws": [
            {"start": 0, "end": 5, "category": "factual error", "severity": "major", "comment": "wrong"}]})
        second = store.next_item(s, lab)
        store.submit(s, lab, second.item.id, "flaw-submission-2", {"flaws": []})
        records = store.export_records(s, flaw)
        verdicts = sorted(r.verdict for r in records if isinstance(r, Judgement))
        (f,) = [r for r in records if isinstance(r, Flaw)]
        assert verdicts == ["flawed", "no_flaw"]
        assert f.quote == "first" and (f.start, f.end) == (0, 5) and f.category == "factual error"
        assert f.labeler == "human:ann" and f.comment == "wrong" and f.assisted is None
        path = write_jsonl(tmp_path / "flaws.jsonl", records)
        assert [type(r) for r in read_jsonl(path)] == [type(r) for r in records]  # records round-trip

        demo = _campaign(s, "demo", n=1, task="demonstration")
        lab, _ = store.add_labeler(s, demo, "ann")
        _label_all(s, lab, {"text": "Here is how.\nTwo lines."})
        (d,) = store.export_records(s, demo)
        assert isinstance(d, Demonstration) and d.response == "Here is how.\nTwo lines." and d.source == "human:ann"


def test_min_gold_accuracy_drops_unreliable_labelers(sessions):
    with sessions() as s:
        c = _campaign(s, n=3, gold=2, labels_per_item=2)
        good, _ = store.add_labeler(s, c, "good")
        bad, _ = store.add_labeler(s, c, "bad")
        _label_all(s, good, {"choice": "A"})  # gold truth is A
        _label_all(s, bad, {"choice": "B"})
        kept = store.export_records(s, c, min_gold_accuracy=0.5)
        assert {r.labeler for r in kept} == {"human:good"} and len(kept) == 3
        q = store.quality(s, c)
        accuracy = {lq.name: lq.gold_accuracy.value for lq in q.labelers}
        assert accuracy == {"good": 1.0, "bad": 0.0}


def test_labels_of_items_no_record_can_hold_are_left_out_of_the_export(sessions, tmp_path):
    """An item labeled before creation refused prompts without role/content: its label is left out (and
    named), the rest still exports, and the training loader takes the export."""
    with sessions() as s:
        items = [ItemSpec(key="ok", task_id="t0", prompt=PROMPT, response_a="a", response_b="b"),
                 ItemSpec(key="shapeless", task_id="t1", prompt=[{"x": "y"}], response_a="c", response_b="d")]
        c = store.create_campaign(s, "old", CampaignConfig(task="pairwise", gold_fraction=0), items)
        ann, _ = store.add_labeler(s, c, "ann")
        for i in range(2):  # served and labeled as the studio did before the check existed
            served = store._serve(s, ann, 1.0 + i)
            store.submit(s, ann, served.item.id, f"sub-{i:06d}", {"choice": "A"})
        left_out: list = []
        records = store.export_records(s, c, left_out=left_out)
    assert [r.meta["studio"]["item"] for r in records] == ["ok"]
    assert [key for key, _ in left_out] == ["shapeless"] and "message 0" in left_out[0][1]
    assert len(load_preferences(write_jsonl(tmp_path / "prefs.jsonl", records))) == 1
