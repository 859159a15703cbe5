import json

import pytest

from superalign.models import load
from superalign.records import Metric, Preference, write_jsonl
from superalign.rlhf.feedback import (
    FeedbackConfig,
    FeedbackDataError,
    LabelerSettings,
    best_vs_worst,
    collect_preferences,
    load_preferences,
    sample_responses,
    split_by_prompt,
)
from superalign.world import World
from superalign.world.labelers import SimulatedLabeler


def _pref(task_id: str, chosen: str = "good", rejected: str = "bad") -> Preference:
    return Preference(task_id=task_id, prompt=[{"role": "user", "content": f"q {task_id}"}],
                      chosen=chosen, rejected=rejected, labeler="test")


def test_sample_and_collect_on_tiny_model():
    world = World(0)
    tasks = world.tasks("instruction", 2, split="train")
    config = FeedbackConfig(n_prompts=2, samples_per_prompt=3, max_new_tokens=3, batch_size=6, seed=1)
    lm = load("tiny-llama")
    responses = sample_responses(lm, tasks, 3, config)
    assert [len(r) for r in responses] == [3, 3]
    assert responses == sample_responses(lm, tasks, 3, config)  # seeded
    labeler = SimulatedLabeler(config.labeler.to_config(), world.evaluator())
    prefs = collect_preferences(tasks, responses, labeler)
    distinct = sum(len({(a, b) for a in r for b in r if a < b}) for r in responses)
    assert len(prefs) == distinct  # all pairs of distinct responses, none for identical ones
    assert {p.task_id for p in prefs} <= {t.id for t in tasks}
    assert all(p.labeler == "sim:bt(T=0.1,tie_margin=0.05,seed=0)" and p.chosen != p.rejected for p in prefs)


def test_collect_skips_identical_responses():
    world = World(0)
    tasks = world.tasks("instruction", 2, split="train")
    labeler = SimulatedLabeler(LabelerSettings().to_config(), world.evaluator())
    prefs = collect_preferences(tasks, [["same", "same"], ["one", "two"]], labeler)
    assert len(prefs) == 1 and prefs[0].task_id == tasks[1].id
    assert prefs[0].meta["kind"] == "instruction"


def test_split_by_prompt_has_no_leakage():
    prefs = [_pref(f"t{i}", chosen=f"c{j}") for i in range(20) for j in range(3)]
    splits = split_by_prompt(prefs, (0.6, 0.2, 0.2), seed=3)
    ids = [{p.task_id for p in part} for part in (splits.train, splits.validation, splits.test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert [len(s) for s in ids] == [12, 4, 4]
    assert len(splits.train) + len(splits.validation) + len(splits.test) == len(prefs)
    assert split_by_prompt(prefs, (0.6, 0.2, 0.2), seed=3) == splits  # deterministic
    small = split_by_prompt([_pref(f"t{i}") for i in range(3)])  # each split still gets a prompt
    assert (len(small.train), len(small.validation), len(small.test)) == (1, 1, 1)
    with pytest.raises(ValueError, match="sum"):
        split_by_prompt(prefs, (0.5, 0.2, 0.2))


def test_load_round_trip(tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", [_pref("a"), _pref("b")])
    assert [p.task_id for p in load_preferences(path)] == ["a", "b"]


def test_load_missing_file(tmp_path):
    with pytest.raises(FeedbackDataError, match="does not exist"):
        load_preferences(tmp_path / "nope.jsonl")


def test_load_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(FeedbackDataError, match="empty"):
        load_preferences(path)


def test_load_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(_pref("a").model_dump_json() + "\n{not json\n")
    with pytest.raises(FeedbackDataError, match=r"bad\.jsonl:2: not valid JSON"):
        load_preferences(path)


def test_load_missing_field(tmp_path):
    path = tmp_path / "field.jsonl"
    record = json.loads(_pref("a").model_dump_json())
    del record["rejected"]
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(FeedbackDataError, match=r"field\.jsonl:1: not a valid preference record: rejected"):
        load_preferences(path)


def test_load_wrong_record_type(tmp_path):
    path = write_jsonl(tmp_path / "metrics.jsonl", [_pref("a"), Metric(stage="s", name="m", value=1.0)])
    with pytest.raises(FeedbackDataError, match=r"metrics\.jsonl:2: a 'metric' record, not a preference"):
        load_preferences(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(FeedbackDataError, match=r":1: expected a JSON object"):
        load_preferences(path)


def test_load_all_identical_pairs(tmp_path):
    path = write_jsonl(tmp_path / "ties.jsonl", [_pref("a", "x", "x"), _pref("b", "y", "y")])
    with pytest.raises(FeedbackDataError, match="chosen == rejected"):
        load_preferences(path)


def _cmp(task, chosen, rejected, tie=False):
    return Preference(task_id=task, prompt=[{"role": "user", "content": task}], chosen=chosen,
                      rejected=rejected, labeler="sim", tie=tie)


def test_best_vs_worst_takes_the_round_robin_winner_and_loser():
    prefs = [_cmp("t", "a", "b"), _cmp("t", "a", "c"), _cmp("t", "b", "c", tie=True),  # a 2, b 0.5, c 0.5
             _cmp("u", "x", "y"), _cmp("u", "z", "x"), _cmp("u", "z", "y")]  # z 2, x 1, y 0
    pairs = {p.task_id: p for p in best_vs_worst(prefs)}
    assert (pairs["t"].chosen, pairs["t"].rejected) == ("a", "b")  # b and c tie at the bottom: first seen
    assert (pairs["u"].chosen, pairs["u"].rejected) == ("z", "y")
    assert pairs["u"].meta["wins"] == [2.0, 0.0] and not pairs["u"].tie


def test_best_vs_worst_skips_prompts_without_a_preference():
    prefs = [_cmp("t", "a", "b", tie=True), _cmp("s", "a", "a"),  # all tied; identical responses
             _cmp("c", "p", "q"), _cmp("c", "q", "r"), _cmp("c", "r", "p")]  # a cycle: everyone wins once
    assert best_vs_worst(prefs) == []


def test_best_vs_worst_skips_a_head_to_head_tie():
    # a wins twice and c never, but the labeler called a and c a tie when it compared them directly
    prefs = [_cmp("t", "a", "b"), _cmp("t", "b", "c"), _cmp("t", "a", "c", tie=True), _cmp("t", "a", "d"),
             _cmp("t", "d", "c")]
    assert best_vs_worst(prefs) == []
