"""The world's evaluation as an inspect_ai task, run end to end by inspect against the embedded model: inspect's
scores are the world's gold scores of the model's greedy answers (the same numbers the baseline stage gets)."""

from __future__ import annotations

import pytest
from inspect_ai import eval as inspect_eval

from superalign.evaluation import evaluate_greedy
from superalign.inspect_tasks import world
from superalign.models import pull
from superalign.world import World
from superalign.world.core import GoldEvaluator

pytestmark = pytest.mark.real


def test_inspect_runs_the_world_fact_task_against_the_embedded_model(tmp_path):
    pull("smollm2-135m-instruct")
    (log,) = inspect_eval(world(kind="fact", n=8, max_tokens=48), model="superalign/smollm2-135m-instruct",
                          log_dir=str(tmp_path / "logs"), display="none")
    assert log.status == "success" and len(log.samples) == 8
    answers = {s.id: s.output.completion for s in log.samples}
    assert all(a.strip() for a in answers.values())  # a real model answers every prompt
    passed = {s.id: s.scores["world_gold"].value["passed"] for s in log.samples}
    # The same tasks answered and scored by superalign itself: the same answers, the same gold verdicts.
    from superalign.context import load_local

    tasks = World(0).tasks("fact", 8, "test")
    ours = evaluate_greedy(load_local("smollm2-135m-instruct"), tasks, GoldEvaluator(World(0)), stage="test",
                           max_new_tokens=48, batch_size=1)
    assert {e.task_id: e.response for e in ours} == answers
    assert {e.task_id: float(e.passed) for e in ours} == passed
    (scores,) = [s for s in log.results.scores if s.name == "passed"]
    assert scores.metrics["accuracy"].value == pytest.approx(sum(passed.values()) / 8)
    assert list((tmp_path / "logs").glob("*.eval"))  # inspect's own log, readable by `inspect view`
