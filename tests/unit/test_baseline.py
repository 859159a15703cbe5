import pytest

from superalign.baseline import compute_metrics
from superalign.records import Evaluation


def _eval(kind: str, passed: bool, gold: float, details=None) -> Evaluation:
    return Evaluation(stage="baseline", model="m", task_id=f"{kind}-{gold}-{passed}", kind=kind, category="c",
                      prompt=[{"role": "user", "content": "q"}], response="r", gold=gold, passed=passed,
                      details=details or {})


def _instr(strict: dict, loose: dict) -> Evaluation:
    return _eval("instruction", all(strict.values()), sum(strict.values()) / len(strict),
                 {"strict": strict, "loose": loose})


def test_metrics_match_hand_computed_values():
    evals = [
        _instr({"a": True, "b": False}, {"a": True, "b": True}),
        _instr({"a": True}, {"a": True}),
        _instr({"a": False, "b": False, "c": True}, {"a": False, "b": True, "c": True}),
        _eval("fact", True, 1.0), _eval("fact", False, 0.0), _eval("fact", True, 1.0), _eval("fact", True, 1.0),
        _eval("policy", False, 0.0), _eval("policy", True, 1.0),
    ]
    m = {x.name: x for x in compute_metrics(evals, "m", n_boot=200)}
    assert m["instruction.prompt_strict"].value == pytest.approx(1 / 3)
    assert m["instruction.prompt_loose"].value == pytest.approx(2 / 3)
    assert m["instruction.instruction_strict"].value == pytest.approx(3 / 6)
    assert m["instruction.instruction_loose"].value == pytest.approx(5 / 6)
    assert m["instruction.instruction_strict"].n == 6
    assert m["instruction.ifeval_strict_avg"].value == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert m["fact.accuracy"].value == pytest.approx(0.75)
    assert m["policy.violation_rate"].value == pytest.approx(0.5)
    assert m["gold.mean"].value == pytest.approx(sum(e.gold for e in evals) / len(evals))
    for metric in m.values():
        if metric.ci_low is not None:
            assert metric.ci_low <= metric.value <= metric.ci_high


def test_missing_kinds_are_left_out():
    names = {x.name for x in compute_metrics([_eval("fact", True, 1.0)], "m", n_boot=100)}
    assert names == {"fact.accuracy", "gold.fact", "gold.mean"}
