"""Campaign items from pipeline records and items files (no database)."""

from __future__ import annotations

import json
import re

import pytest

from superalign.records import Demonstration, Evaluation, Metric, Preference, write_jsonl
from superalign.studio import StudioError
from superalign.studio.items import (AssistanceInput, CampaignConfig, build_items, clean_text, read_assistance,
                                     read_sources)

PROMPT = [{"role": "user", "content": "Write two words."}]


def _pref(i: int, chosen="good answer", rejected="bad") -> Preference:
    return Preference(task_id=f"t{i}", prompt=PROMPT, chosen=f"{chosen} {i}", rejected=f"{rejected} {i}",
                      labeler="sim:bt", meta={"kind": "instruction"})


def _eval(task_id: str, response: str, gold: float, passed: bool, model="m") -> Evaluation:
    return Evaluation(stage="train", model=model, task_id=task_id, kind="instruction", category="length",
                      prompt=PROMPT, response=response, gold=gold, passed=passed)


def test_pairwise_items_from_preferences_in_seeded_random_order():
    items = build_items([_pref(i) for i in range(200)], CampaignConfig(task="pairwise", gold_fraction=0.0))
    assert len(items) == 200
    first = [s.response_a.startswith("good") for s in items]
    assert 70 < sum(first) < 130  # the pipeline's "chosen" is not always A
    for s in items:  # where it went is kept (for the researcher, never shown)
        assert s.meta["source_chosen"] == ("A" if s.response_a.startswith("good") else "B")
        assert s.truth is None and not s.gold and s.meta["kind"] == "instruction"
    again = build_items([_pref(i) for i in range(200)], CampaignConfig(task="pairwise", gold_fraction=0.0))
    assert [(s.key, s.response_a) for s in again] == [(s.key, s.response_a) for s in items]  # deterministic


def test_pairwise_items_from_evaluations_know_the_better_response():
    sources = [_eval("t1", "short", 0.2, False, "base"), _eval("t1", "a better one", 0.9, True, "dpo"),
               _eval("t2", "same", 0.5, True), _eval("t2", "same", 0.5, True),  # one distinct response: no pair
               _eval("t3", "x", 0.5, True), _eval("t3", "y", 0.5, True)]  # equal gold: no known answer
    items = build_items(sources, CampaignConfig(task="pairwise", gold_fraction=0.0))
    by_task = {s.task_id: s for s in items}
    assert set(by_task) == {"t1", "t3"}
    t1 = by_task["t1"]
    better = "A" if t1.response_a == "a better one" else "B"
    assert t1.truth == {"choice": better}
    assert by_task["t3"].truth is None


def test_gold_fraction_picks_items_with_known_answers():
    sources = [_eval(f"t{i}", "short", 0.1, False) for i in range(20)] + \
              [_eval(f"t{i}", "long answer", 0.8, True) for i in range(20)] + [_pref(i) for i in range(20)]
    items = build_items(sources, CampaignConfig(task="pairwise", gold_fraction=0.25))
    assert len(items) == 40
    gold = [s for s in items if s.gold]
    assert len(gold) == 10 and all(s.truth is not None for s in gold)
    # Few known answers: as many gold items as there are, no more.
    few = build_items([_pref(i) for i in range(10)] + sources[:1] + sources[20:21],
                      CampaignConfig(task="pairwise", gold_fraction=0.5))
    assert sum(s.gold for s in few) == 1


def test_rating_and_flaw_items_one_response_each():
    sources = [_eval("t1", "resp", 0.5, False), _pref(2),
               Demonstration(task_id="t3", prompt=PROMPT, response="demo", source="best_of_4:rm"),
               Metric(stage="train", name="x", value=1.0)]  # not an item: ignored
    rating = build_items(sources, CampaignConfig(task="rating", scale=5, gold_fraction=0.0))
    assert sorted(s.response_a for s in rating) == ["bad 2", "demo", "good answer 2", "resp"]
    assert all(s.response_b is None for s in rating)
    (ev,) = [s for s in rating if s.task_id == "t1"]
    assert ev.truth == {"rating": 3, "tolerance": 1}  # gold 0.5 on a 1..5 scale
    flaw = build_items(sources, CampaignConfig(task="flaw", gold_fraction=0.0))
    (ev,) = [s for s in flaw if s.task_id == "t1"]
    assert ev.truth == {"flawed": True}


def test_demonstration_items_are_distinct_prompts():
    items = build_items([_pref(1), _pref(1, "other", "x"), _eval("t2", "r", 1.0, True)],
                        CampaignConfig(task="demonstration"))
    assert sorted(s.task_id for s in items) == ["t1", "t2"]
    assert all(s.response_a is None and s.truth is None for s in items)


def test_items_file_and_run_directory(tmp_path):
    run = tmp_path / "runs" / "r1"
    write_jsonl(run / "records" / "train.jsonl", [_pref(i) for i in range(3)])
    write_jsonl(run / "records" / "baseline.jsonl", [_eval("t9", "only one", 0.3, False)])
    items_file = tmp_path / "items.jsonl"
    items_file.write_text("\n".join(json.dumps(x) for x in [
        {"type": "studio_item", "task_id": "p1", "prompt": "Pick one.", "responses": ["a", "b"],
         "truth": {"choice": "B"}, "gold": True, "critique": "A is wrong."},
        {"type": "studio_item", "task_id": "p2", "prompt": "Rate me.", "responses": ["only"]},  # a rating item
    ]) + "\n")
    sources = read_sources([run, items_file])
    items = build_items(sources, CampaignConfig(task="pairwise", gold_fraction=0.0))
    assert len(items) == 4  # 3 preferences + the one two-response studio item
    (p1,) = [s for s in items if s.task_id == "p1"]
    assert p1.gold and p1.truth == {"choice": "B"} and p1.assistance == {"kind": "critique", "text": "A is wrong."}
    assert p1.prompt == [{"role": "user", "content": "Pick one."}]


def test_bad_sources_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"type": "studio_item", "task_id": "x", "prompt": "p", "responses": ["a", "b"]})
                   + "\n{oops\n")
    with pytest.raises(StudioError, match=r"bad\.jsonl:2"):
        read_sources([bad])
    with pytest.raises(StudioError, match="no such file"):
        read_sources([tmp_path / "missing.jsonl"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(StudioError, match="no \\*.jsonl"):
        read_sources([tmp_path / "empty"])
    gold_without_truth = tmp_path / "g.jsonl"
    gold_without_truth.write_text(json.dumps({"type": "studio_item", "task_id": "x", "prompt": "p",
                                              "responses": ["a", "b"], "gold": True}) + "\n")
    with pytest.raises(StudioError, match="g.jsonl:1.*truth"):
        read_sources([gold_without_truth])


def test_truth_must_fit_the_task(tmp_path):
    f = tmp_path / "i.jsonl"
    f.write_text(json.dumps({"type": "studio_item", "task_id": "x", "prompt": "p", "responses": ["a", "b"],
                             "truth": {"choice": "C"}}) + "\n")
    with pytest.raises(StudioError, match="does not fit a pairwise item"):
        build_items(read_sources([f]), CampaignConfig(task="pairwise"))


def test_nothing_to_label_is_an_error():
    with pytest.raises(StudioError, match="nothing to label"):
        build_items([Metric(stage="s", name="n", value=1.0)], CampaignConfig(task="rating"))


def test_assistance_file_attaches_by_task_and_response(tmp_path):
    f = tmp_path / "assist.jsonl"
    f.write_text("\n".join([
        json.dumps({"task_id": "t1", "critique": "Too short."}),
        json.dumps({"task_id": "t2", "response": "good answer 2", "debate": [{"speaker": "Pro", "text": "fine"},
                                                                            {"speaker": "Con", "text": "no"}]}),
    ]) + "\n")
    assistance = read_assistance(f)
    items = build_items([_pref(1), _pref(2), _pref(3)], CampaignConfig(task="rating", gold_fraction=0.0), assistance)
    by = {(s.task_id, s.response_a): s.assistance for s in items}
    assert by[("t1", "good answer 1")] == by[("t1", "bad 1")] == {"kind": "critique", "text": "Too short."}
    assert by[("t2", "good answer 2")]["kind"] == "debate" and len(by[("t2", "good answer 2")]["turns"]) == 2
    assert by[("t2", "bad 2")] is None and by[("t3", "bad 3")] is None
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": "t1", "critique": "x", "debate": [{"speaker": "a", "text": "b"}]}) + "\n")
    with pytest.raises(StudioError, match="bad.jsonl:1.*exactly one"):
        read_assistance(bad)
    with pytest.raises(ValueError):
        AssistanceInput(task_id="t")


def test_limit_samples_and_text_is_cleaned_for_the_browser():
    prefs = [Preference(task_id=f"t{i}", prompt=PROMPT, chosen=f"line one\r\nline two {i}\x00", rejected="no",
                        labeler="sim") for i in range(10)]
    items = build_items(prefs, CampaignConfig(task="rating", limit=4, gold_fraction=0.0))
    assert len(items) == 4
    assert all("\r" not in s.response_a and "\x00" not in s.response_a for s in items)
    assert clean_text("a\rb\r\nc") == "a\nb\nc" and clean_text(None) is None


def test_config_defaults_and_validation():
    config = CampaignConfig(task="flaw")
    assert "flaw" in config.instructions and config.categories[0] == "factual error"
    with pytest.raises(ValueError):
        CampaignConfig(task="pairwise", labels_per_item=0)
    with pytest.raises(ValueError):
        CampaignConfig(task="ranking")
    with pytest.raises(ValueError):
        CampaignConfig(task="pairwise", surprise=1)


def test_items_that_training_would_trip_over_are_refused_at_creation(tmp_path):
    """Issue 16 item 3: these passed creation, labeling and export, then broke `train dpo --preferences`."""
    base = {"type": "studio_item", "task_id": "t", "prompt": "Which planet is largest?", "responses": ["a", "b"]}
    cases = [({"prompt": [{"x": "y"}]}, "prompt: message 0: a chat message"),
             ({"prompt": [{"role": "robot", "content": "hi"}]}, "prompt: message 0: a chat message"),
             ({"prompt": ""}, "prompt: empty"), ({"prompt": []}, "prompt: empty"),
             ({"responses": ["a", "   \n"]}, "responses.1: empty or only whitespace"),
             ({"responses": ["same", "same"]}, "responses: the two responses are identical")]
    for i, (change, message) in enumerate(cases):
        f = tmp_path / f"items{i}.jsonl"
        f.write_text(json.dumps({**base, **change}) + "\n")
        with pytest.raises(StudioError, match=re.escape(f"items{i}.jsonl:1")) as err:
            read_sources([f])
        assert message in str(err.value), (change, str(err.value))
    ok = tmp_path / "ok.jsonl"
    ok.write_text(json.dumps({**base, "prompt": [{"role": "user", "content": "Which planet is largest?"}]}) + "\n")
    assert len(read_sources([ok])) == 1
