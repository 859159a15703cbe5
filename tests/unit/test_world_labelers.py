"""Simulated labelers: Bradley-Terry with temperature, biases, limited attention, exact reproducibility."""

import itertools

import pytest

from superalign.records import Preference
from superalign.world import World
from superalign.world.labelers import LabelerConfig, SimulatedLabeler, bt_probability


@pytest.fixture(scope="module")
def world():
    return World(0)


@pytest.fixture(scope="module")
def evaluator(world):
    return world.evaluator()


@pytest.fixture(scope="module")
def fact_pairs(world, evaluator):
    """(task, right answer, wrong answer) for fact questions."""
    out = []
    for task in world.tasks("fact", 120, "train"):
        right = evaluator.score(task, "x").details["expected"]
        out.append((task, f"The answer is {right}.", "I have no idea, sorry."))
    return out


# Varied canned responses: on multi-constraint instruction tasks their gold scores differ.
BANK = [
    "a short lowercase answer without any commas at all.",
    "<<TITLE>>\nSECTION 1\nALL CAPS TEXT. P.S. BYE.",
    "Today I write, with commas, a *highlighted* line.\n* one\n* two\nP.S. bye. Peace out.",
    '"Quoted answer about the river and the light, with [name] and [place]."',
    '```json\n{"text": "river light memory"}\n```',
    "Today.\n***\nSecond paragraph here.\n***\nThird. Is there anything else I can help with?",
    " ".join(["river"] * 10 + ["memory", "energy", "light", "garden"] * 30),
    "Honestly this is plain text. It has several sentences. Each is short. Very short indeed.",
]


def _agreement(labeler, evaluator, triples):
    """Fraction of comparisons where the labeler chooses the response with higher gold."""
    agree = 0
    for task, a, b in triples:
        ga, gb = evaluator.score(task, a).gold, evaluator.score(task, b).gold
        pref = labeler.prefer(task, a, b)
        agree += (pref.chosen == a) == (ga > gb)
    return agree / len(triples)


def _instruction_triples(world, evaluator, min_constraints=3):
    out = []
    for task in world.tasks("instruction", None, "train"):
        if task.category.count("+") + 1 < min_constraints:
            continue
        for a, b in itertools.combinations(BANK, 2):
            if evaluator.score(task, a).gold != evaluator.score(task, b).gold:
                out.append((task, a, b))
        if len(out) >= 400:
            break
    return out


def test_prefer_returns_preference_record(world, evaluator, fact_pairs):
    task, right, wrong = fact_pairs[0]
    labeler = SimulatedLabeler(LabelerConfig(temperature=0.1, length_bias=0.2), evaluator)
    pref = labeler.prefer(task, wrong, right)
    assert isinstance(pref, Preference)
    assert pref.task_id == task.id and pref.prompt == task.messages
    assert {pref.chosen, pref.rejected} == {right, wrong}
    assert 0.5 <= pref.confidence <= 1.0
    assert pref.labeler == "sim:bt(T=0.1,length_bias=0.2,seed=0)"
    tie = labeler.prefer(task, right, right)
    assert tie.tie and tie.confidence == 0.5


def test_zero_temperature_always_picks_higher_gold(evaluator, fact_pairs):
    for t in (0.0, 1e-6):
        labeler = SimulatedLabeler(LabelerConfig(temperature=t), evaluator)
        for task, right, wrong in fact_pairs:
            assert labeler.prefer(task, wrong, right).chosen == right


def test_higher_temperature_more_disagreement(evaluator, fact_pairs):
    cold = SimulatedLabeler(LabelerConfig(temperature=0.05), evaluator)
    hot = SimulatedLabeler(LabelerConfig(temperature=2.0), evaluator)
    triples = [(t, r, w) for t, r, w in fact_pairs]
    assert _agreement(cold, evaluator, triples) == 1.0
    assert _agreement(hot, evaluator, triples) < 0.85


def test_length_bias_prefers_longer_equal_gold_answer(evaluator, fact_pairs):
    def longer_wins(cfg):
        labeler = SimulatedLabeler(cfg, evaluator)
        wins = 0
        for task, right, _ in fact_pairs:
            long = right + " " + "Here is some extra background that adds many words. " * 8
            assert evaluator.score(task, long).gold == evaluator.score(task, right).gold
            wins += labeler.prefer(task, right, long).chosen == long
        return wins / len(fact_pairs)

    unbiased = longer_wins(LabelerConfig(temperature=0.1))
    biased = longer_wins(LabelerConfig(temperature=0.1, length_bias=0.5))
    assert biased > unbiased + 0.3
    assert biased > 0.9


def test_confidence_and_flattery_biases_move_utility(evaluator, fact_pairs):
    task, right, _ = fact_pairs[0]
    base = SimulatedLabeler(LabelerConfig(), evaluator)
    conf = SimulatedLabeler(LabelerConfig(confidence_bias=0.3), evaluator)
    flat = SimulatedLabeler(LabelerConfig(flattery_bias=0.3), evaluator)
    hedged, sure, flattering = f"I think maybe {right}", f"Definitely {right}", f"Great question! {right}"
    assert conf.utility(task, sure) > conf.utility(task, hedged)
    assert base.utility(task, sure) == base.utility(task, hedged)
    assert flat.utility(task, flattering) > flat.utility(task, right)
    assert base.utility(task, flattering) == base.utility(task, right)


def test_seeds_reproduce_and_differ(evaluator, fact_pairs):
    cfg = LabelerConfig(temperature=1.0, seed=7)
    a = SimulatedLabeler(cfg, evaluator)
    b = SimulatedLabeler(cfg, evaluator)
    forward = [a.prefer(t, r, w) for t, r, w in fact_pairs]
    backward = [b.prefer(t, r, w) for t, r, w in reversed(fact_pairs)][::-1]
    assert forward == backward  # same answers whatever the call order
    swapped = [a.prefer(t, w, r).chosen for t, r, w in fact_pairs]
    assert swapped == [p.chosen for p in forward]  # argument order does not matter either
    other = SimulatedLabeler(LabelerConfig(temperature=1.0, seed=8), evaluator)
    assert [other.prefer(t, r, w).chosen for t, r, w in fact_pairs] != [p.chosen for p in forward]


def test_attention_k_reduces_agreement_on_multi_constraint_tasks(world, evaluator):
    triples = _instruction_triples(world, evaluator)
    assert len(triples) >= 100
    full = SimulatedLabeler(LabelerConfig(temperature=0.01), evaluator)
    partial = SimulatedLabeler(LabelerConfig(temperature=0.01, attention_k=1), evaluator)
    full_agree = _agreement(full, evaluator, triples)
    partial_agree = _agreement(partial, evaluator, triples)
    assert full_agree > 0.99
    assert partial_agree < full_agree - 0.05


def test_bt_probability():
    assert bt_probability(1.0, 0.0, 0.0) == 1.0
    assert bt_probability(0.0, 0.0, 0.0) == 0.5
    assert bt_probability(0.0, 1.0, 1e-9) == 0.0
    assert bt_probability(0.2, 0.1, 0.1) == pytest.approx(1 / (1 + 2.718281828 ** -1))


def test_bad_config_rejected():
    with pytest.raises(ValueError):
        LabelerConfig(temperature=-1)
    with pytest.raises(ValueError):
        LabelerConfig(attention_k=0)


def test_tie_margin_reports_near_equal_responses_as_ties():
    from superalign.world import World
    from superalign.world.labelers import LabelerConfig, SimulatedLabeler

    world = World(0)
    task = world.tasks("fact", 1, split="train")[0]
    evaluator = world.evaluator()
    strict = SimulatedLabeler(LabelerConfig(temperature=0.1, tie_margin=0.05), evaluator)
    # Two wrong answers have equal gold: a tie, not a coin flip.
    assert strict.prefer(task, "I do not know.", "No idea at all.").tie
    flipping = SimulatedLabeler(LabelerConfig(temperature=0.1), evaluator)
    assert not flipping.prefer(task, "I do not know.", "No idea at all.").tie
    with pytest.raises(ValueError, match="tie_margin"):
        LabelerConfig(tie_margin=-1)
