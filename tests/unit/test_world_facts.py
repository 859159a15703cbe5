"""Knowledge base: statements (count, balance, negation consistency, no duplicates) and answer checks."""

import random
from collections import Counter, defaultdict

import pytest

from superalign.world.facts import (
    TOPICS,
    animal_questions,
    capital_questions,
    comparison_questions,
    conversion_questions,
    element_questions,
    generate_questions,
    generate_statements,
)


@pytest.fixture(scope="module")
def statements():
    return generate_statements(0)


def test_enough_statements_balanced_and_unique(statements):
    assert len(statements) >= 1500
    n_true = sum(s.label for s in statements)
    assert abs(n_true / len(statements) - 0.5) <= 0.01
    assert len({s.text for s in statements}) == len(statements)
    assert len({s.id for s in statements}) == len(statements)
    assert set(Counter(s.topic for s in statements)) == set(TOPICS)


def test_negation_consistency(statements):
    pairs = defaultdict(list)
    for s in statements:
        pairs[s.pair_id].append(s)
    assert len(pairs) * 2 == len(statements)
    for group in pairs.values():
        plain, negated = sorted(group, key=lambda s: s.negated)
        assert not plain.negated and negated.negated
        assert plain.label != negated.label
        assert " not " in negated.text
    assert sum(s.negated for s in statements) * 2 == len(statements)


def test_statement_truth_spot_checks(statements):
    by_text = {s.text: s.label for s in statements}
    assert by_text["The capital of France is Paris."] is True
    assert by_text["The capital of France is not Paris."] is False
    assert by_text["The chemical symbol for gold is Au."] is True
    assert by_text["A dolphin is a mammal."] is True
    assert by_text["A dolphin is not a mammal."] is False
    false_capitals = [s for s in statements if s.topic == "capitals" and not s.label and not s.negated]
    assert false_capitals and all("The capital of" in s.text for s in false_capitals)


def test_comparison_and_conversion_statements_are_arithmetically_right(statements):
    for s in statements:
        if s.topic == "comparisons":
            a, rest = s.text.split(" is ", 1)
            b = int(rest.rstrip(".").split()[-1])
            truth = int(a) > b
            assert s.label == (truth != s.negated)
        if s.topic == "conversions" and not s.negated:
            assert s.label == (s.text in _true_conversions(statements))


def _true_conversions(statements):
    return {s.text for s in statements if s.topic == "conversions" and s.pair_id.endswith("-right")
            and not s.negated}


def test_statements_deterministic_and_seed_dependent():
    assert generate_statements(3) == generate_statements(3)
    assert [s.text for s in generate_statements(3)] != [s.text for s in generate_statements(4)]


def _q(questions, text):
    return next(q for q in questions if q.question == text)


def test_capital_answers_lenient():
    q = _q(capital_questions(), "What is the capital of France?")
    assert q.check("paris")
    assert q.check("The capital is **Paris**!")
    assert q.check("It's Paris, not Lyon.")
    assert not q.check("Lyon")
    assert not q.check("Parisian food is great")  # whole words only
    assert not q.check("Berlin or Paris?")  # a wrong known capital named first
    assert not q.check("")
    us = _q(capital_questions(), "What is the capital of the United States?")
    assert us.check("Washington DC") and us.check("washington, d.c.")
    brazil = _q(capital_questions(), "What is the capital of Brazil?")
    assert brazil.check("Brasilia") and brazil.check("Brasília")


def test_element_answers():
    gold = _q(element_questions(), "What is the chemical symbol for gold?")
    assert gold.check("The symbol is Au.") and gold.check("au")
    assert not gold.check("Ag") and not gold.check("Gold is shiny")
    helium = _q(element_questions(), "Which chemical element has the symbol He?")
    assert helium.check("Helium.") and not helium.check("He")


def test_animal_answers_first_class_wins():
    q = next(q for q in animal_questions() if "dolphin" in q.question)
    assert q.check("A dolphin is a mammal, not a fish.")
    assert q.check("Mammals")
    assert not q.check("Fish.")
    assert not q.check("It is a fish, not a mammal.")


def test_numeric_answers():
    rng = random.Random(0)
    comp = comparison_questions(rng, 5)[0]
    big = comp.answer
    small = comp.options[0][0]
    assert comp.check(big) and comp.check(f"{big} is larger than {small}.")
    assert not comp.check(small) and not comp.check(f"{small} is smaller than {big}.")
    # Restating the two numbers is not an answer, in either order; an answer after the restatement is.
    for a, b in ((big, small), (small, big)):
        assert not comp.check(f"We need the greatest common divisor (GCD) of {a} and {b}.")
        assert not comp.check(f"Comparing {a}, {b} and other numbers")
        assert not comp.check(f"{a} or {b}? Hard to say.")
        assert comp.check(f"Of {a} and {b}, the larger is {big}.")
    assert comp.check(f"{big}, not {small}")
    conv = conversion_questions(random.Random(0), 3)[0]
    assert conv.check(f"That is {conv.answer}.")
    assert conv.check(f"{int(conv.answer):,}")  # thousands separators
    assert not conv.check("I do not know.")
    assert not conv.check(str(int(conv.answer) + 1))


def test_question_pool():
    qs = generate_questions(0)
    assert len(qs) >= 500
    assert set(q.topic for q in qs) == set(TOPICS)
    assert len({q.question for q in qs}) == len(qs)
    for q in qs:  # every question accepts its own answer
        assert q.check(q.answer), q
