"""The assist stage's own parts: the sentences its report opens with, and its early check."""

from __future__ import annotations

import pytest

from superalign import assist
from superalign.records import Metric


def _m(name, value, low, high, **meta):
    return Metric(stage="assist", name=name, value=value, ci_low=low, ci_high=high, n=32, meta=meta)


def test_the_notes_say_plainly_what_helps_and_what_does_not():
    metrics = [_m("judge.unaided.false_flags", 0.1, 0.0, 0.2, judge="sim:limited(k=2)"),
               _m("judge.critic.false_flags", 0.2, 0.1, 0.3, judge="sim:limited(k=2)"),
               _m("judge.critic.uplift", 0.22, 0.08, 0.36, judge="sim:limited(k=2)"),
               _m("judge.model.uplift", 0.03, 0.0, 0.08, judge="sim:limited(k=2)"),
               _m("judge.oracle.uplift", 0.5, 0.4, 0.7, judge="sim:limited(k=2)")]
    notes = assist._critique_notes(metrics, "m")
    assert notes == ["critiques by critic helps the limited judge: +0.22 flaws found per flawed response "
                     "[+0.08, +0.36]; false flags per response 0.10 -> 0.20",
                     "critiques by model does not measurably help the limited judge: +0.03 flaws found per flawed "
                     "response [+0.00, +0.08]"]
    debate = [_m("accuracy.naive.j", 0.47, 0.31, 0.66, protocol="naive", setup="none", judge="j"),
              _m("accuracy.debate.bo1.j", 0.5, 0.3, 0.6, protocol="debate", setup="bo1", judge="j"),
              _m("accuracy.debate.oracle.j", 0.94, 0.84, 1.0, protocol="debate", setup="oracle", judge="j")]
    assert assist._debate_notes(debate, "m") == [
        "debate by m (bo1) does not measurably help j: 0.50 [0.30, 0.60] vs naive 0.47"]


def test_the_stage_checks_every_split_before_any_model_loads():
    with pytest.raises(ValueError, match="too few flawed or clean"):
        assist.check(assist.Config(critique={"n_test": 4, "flawed_fraction": 0.9, "kinds": ["fact"]}))
    with pytest.raises(ValueError, match="train split holds only"):
        assist.check(assist.Config(critique={"kinds": ["code"], "n_test": 12, "training": {"n_train": 100}}))
    assist.check(assist.Config())  # the defaults fit
