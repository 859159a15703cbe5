"""The automated researcher's parts (superalign.researcher): its search space, its proposers, the score of a seed,
and the loop, with the experiments faked (the CLI runs them for real in tests/integration/test_research.py)."""

from __future__ import annotations

import json

import pytest

from superalign.models.chat import ScriptedChatModel
from superalign.records import ResearchStep, W2SSeed, read_jsonl, write_jsonl
from superalign.researcher import agent
from superalign.researcher.experiment import Setup, seed_score
from superalign.researcher.proposers import ChatProposer, RandomProposer, TPEProposer
from superalign.researcher.space import W2S_SPACE, baseline, check_idea, overrides, tidy


def _step(i: int, idea: dict, value: float | None) -> ResearchStep:
    return ResearchStep(step=i, proposer="x", idea=idea, objective="o", value=value)


def test_ideas_are_checked_against_the_space():
    base = baseline(W2S_SPACE)
    assert base["methods"] == "naive" and overrides(base)["methods"] == ["naive"]
    assert check_idea(W2S_SPACE, {"student.lr": 0.05})["student.epochs"] == 60  # missing keys: the baseline's
    with pytest.raises(ValueError, match="student.lr: 5.0 is outside"):
        check_idea(W2S_SPACE, {"student.lr": 5.0})
    with pytest.raises(ValueError, match="not in the search space: train.lr"):
        check_idea(W2S_SPACE, {"train.lr": 0.05})  # the weak model's and the ceiling's: not the student's
    assert tidy({"a": 0.123456, "b": "naive"}) == {"a": 0.123, "b": "naive"}


def test_the_baseline_idea_is_the_profiles_config_unchanged():
    """Defaults come from the generalize config the experiments start from: the profile and the shared values."""
    from superalign.researcher import Config, resolved_space

    def defaults(**kw):
        return baseline(resolved_space(Config(**kw)))

    assert defaults(profile="quick") == baseline(W2S_SPACE)  # the space's own defaults are quick's
    assert defaults(profile="smoke")["student.epochs"] == 4  # smoke trains its students 4 epochs
    shared = defaults(profile="quick", base={"train": {"lr": 0.05}, "confidence": {"alpha_max": 0.75}})
    assert shared["student.lr"] == 0.05 and shared["confidence.alpha_max"] == 0.75
    assert defaults(profile="quick", base={"student": {"l2": 0.5}})["student.l2"] == 0.5  # a student setting wins
    assert defaults(profile="quick", base={"methods": ["confidence"]})["methods"] == "confidence"
    with pytest.raises(ValueError, match="research.space: student.lr is 0.5 in profile quick, outside"):
        resolved_space(Config(profile="quick", base={"train": {"lr": 0.5}}))


def test_random_and_tpe_propose_points_of_the_space_reproducibly():
    history = [_step(0, baseline(W2S_SPACE), 0.2)]
    for proposer in (RandomProposer(3), TPEProposer(3)):
        idea, why = proposer.propose(W2S_SPACE, history)
        assert check_idea(W2S_SPACE, idea) == idea and why
        assert proposer.propose(W2S_SPACE, history)[0] == idea  # the same history, the same idea (resumable)
    scored = history + [_step(i, RandomProposer(i).propose(W2S_SPACE, history)[0], 0.1 * i) for i in range(1, 6)]
    idea, why = TPEProposer(0, startup=4).propose(W2S_SPACE, scored)
    assert why == "TPE over 6 scored ideas" and check_idea(W2S_SPACE, idea) == idea


def test_a_chat_proposer_is_parsed_and_falls_back_to_random_when_it_cannot_be():
    good = ScriptedChatModel(['Sure. {"idea": {"methods": "confidence", "confidence.alpha_max": 0.75}, '
                              '"rationale": "trust the student more"}'])
    idea, why = ChatProposer(good).propose(W2S_SPACE, [_step(0, baseline(W2S_SPACE), 0.2)])
    assert idea["methods"] == "confidence" and idea["confidence.alpha_max"] == 0.75 and why == "trust the student more"
    assert "naive" in good.calls[0][0]["content"] and "0.200" in good.calls[0][0]["content"]  # the space, the history
    bad = ScriptedChatModel(['{"idea": {"student.lr": 9}}'] * 3)  # out of range, three times
    idea, why = ChatProposer(bad, seed=1).propose(W2S_SPACE, [])
    assert len(bad.calls) == 3 and "a random idea instead" in why and "outside" in why
    assert idea == RandomProposer(1).propose(W2S_SPACE, [])[0]


def test_the_score_of_a_seed_is_pgr_over_the_tasks_together(tmp_path):
    def seed(task, weak, ceiling, naive):
        return W2SSeed(task=task, weak="w", strong="s", seed=0, half_sizes=[1, 1], weak_label_accuracy=0.5,
                       scores={"weak": {"accuracy": weak}, "ceiling": {"accuracy": ceiling},
                               "naive": {"accuracy": naive}}, epochs={})

    (tmp_path / "records").mkdir()
    write_jsonl(tmp_path / "records" / "generalize.jsonl", [seed("fact", 0.6, 0.8, 0.7), seed("policy", 0.9, 1.0, 0.9)])
    assert seed_score(tmp_path, "naive") == pytest.approx((1.6 - 1.5) / (1.8 - 1.5))
    write_jsonl(tmp_path / "records" / "generalize.jsonl", [seed("fact", 0.6, 0.61, 0.7)])
    assert seed_score(tmp_path, "naive") is None  # a gap below 0.02 carries no PGR


def test_the_loop_keeps_what_beats_the_best_and_resumes_from_its_log(tmp_path, monkeypatch):
    scores = iter([{0: 0.1, 1: 0.2, 2: 0.3}, {0: 0.3, 1: 0.4, 2: 0.5}, {0: 0.0, 1: 0.1, 2: None}, {0: 0.5, 1: 0.5, 2: 0.6}])
    monkeypatch.setattr(agent, "evaluate", lambda setup, idea, seeds: (next(scores), 2.0, None))
    setup = Setup("http://x", str(tmp_path), "smoke", "m", "cpu", ["fact"])
    path = tmp_path / "steps.jsonl"
    steps = agent.research_loop(setup, RandomProposer(0), W2S_SPACE, [0, 1, 2], 2, 60, path, log=lambda _: None)
    assert [s.step for s in steps] == [0, 1, 2] and [s.kept for s in steps] == [True, True, False]
    assert steps[0].idea == baseline(W2S_SPACE) and steps[1].value == pytest.approx(0.4)
    assert steps[2].value is None and "too small" in steps[2].error and steps[2].per_seed == {"0": 0.0, "1": 0.1}
    again = agent.research_loop(setup, RandomProposer(0), W2S_SPACE, [0, 1, 2], 3, 60, path, log=lambda _: None)
    assert [s.step for s in again] == [0, 1, 2, 3] and again[3].kept  # only the missing step ran
    assert len(read_jsonl(path, ResearchStep)) == 4
    spent = agent.research_loop(setup, RandomProposer(0), W2S_SPACE, [0, 1, 2], 10, 8 / 60, path, log=lambda _: None)
    assert len(spent) == 4  # 4 steps x 2 s used the 8 s budget: nothing more ran
    json.dumps(again[1].model_dump())
