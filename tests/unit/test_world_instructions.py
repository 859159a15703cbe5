"""Verifiable instructions: every checker has a passing and a failing case; loose vs strict; metrics."""

import json
import random

import pytest

from superalign.world.core import Score
from superalign.world.instructions import (
    CONSTRAINTS,
    TYPE_IDS,
    Instruction,
    compatible,
    count_sentences,
    generate_instruction_cases,
    instruction_metrics,
    loose_variants,
    per_type_accuracy,
    render_prompt,
    sample_instructions,
)

LONG = " ".join(["word"] * 120)

# type_id -> (kwargs, a response that passes, a response that fails)
CASES = {
    "length:words": ({"relation": "at least", "n": 100}, LONG, "Too short."),
    "length:sentences": ({"relation": "at most", "n": 2}, "One. Two!", "One. Two. Three?"),
    "length:paragraphs": ({"n": 2}, "First part.\n***\nSecond part.", "First part.\n\nSecond part."),
    "keywords:include": ({"keywords": ["river", "light"]}, "The river holds the Light.", "The rivers shine."),
    "keywords:avoid": ({"forbidden": ["very", "thing"]}, "Everything is fine.", "It is very fine."),
    "keywords:frequency": ({"word": "ocean", "n": 2}, "Ocean, ocean!", "One ocean, many oceans."),
    "keywords:letter_frequency": ({"letter": "e", "n": 3}, "Eeek, ten", "A dog."),
    "case:lowercase": ({}, "all lowercase here.", "Not all lowercase."),
    "case:uppercase": ({}, "ALL CAPS HERE.", "ALL CAPS but not this."),
    "format:json": ({}, '```json\n{"a": 1}\n```', "{'a': 1}"),
    "format:bullets": ({"n": 2}, "Intro\n* one\n- two", "* one\n* two\n* three"),
    "format:title": ({}, "<<A Good Title>>\nText.", "<A Good Title>\nText."),
    "format:placeholders": ({"n": 2}, "Send to [name] at [address].", "Send to [name] at home."),
    "format:highlights": ({"n": 2}, "This is *one* and **two**.", "Only *one* here, ** **."),
    "format:sections": ({"n": 2}, "SECTION 1\nfoo\nSECTION 2\nbar", "SECTION 1\nfoo\nSection 2\nbar"),
    "format:quotation": ({}, '"All quoted."', 'All "quoted".'),
    "content:postscript": ({}, "Hello.\nP.S. Bye.", "Hello. PS bye, see the map.s."),
    "punctuation:no_comma": ({}, "No commas at all.", "One, comma."),
    "start:first_word": ({"word": "Today"}, "Today we learn.", "We learn today."),
    "end:phrase": ({"phrase": "Peace out."}, "All done. Peace out.", "Peace out. All done."),
}


def test_every_type_has_cases_and_there_are_at_least_15():
    assert len(TYPE_IDS) >= 15
    assert set(CASES) == set(TYPE_IDS)


@pytest.mark.parametrize("type_id", sorted(CASES))
def test_checker_true_and_false(type_id):
    kwargs, good, bad = CASES[type_id]
    inst = Instruction(type_id, kwargs)
    assert inst.check(good) is True
    assert inst.check(bad) is False
    assert inst.check("") is False  # an empty response never passes
    assert inst.description  # renders with these kwargs


@pytest.mark.parametrize("type_id", TYPE_IDS)
def test_sampled_kwargs_render(type_id):
    rng = random.Random(0)
    for _ in range(5):
        kwargs = CONSTRAINTS[type_id].sample(rng)
        text = Instruction(type_id, kwargs).description
        assert text.strip() and "{" not in text


def test_loose_forgives_a_preamble_line_but_strict_does_not():
    inst = Instruction("start:first_word", {"word": "Today"})
    response = "Sure, here it is:\nToday we learn."
    assert not inst.check(response)
    assert inst.check_loose(response)
    lower = Instruction("case:lowercase")
    assert not lower.check("Sure, here it is:\nall lowercase.")
    assert lower.check_loose("Sure, here it is:\nall lowercase.")


def test_loose_removes_markdown_stars():
    end = Instruction("end:phrase", {"phrase": "Peace out."})
    assert not end.check("Done. **Peace out.**")
    assert end.check_loose("Done. **Peace out.**")


def test_loose_variants_are_ifeval_eight():
    variants = loose_variants("a\n*b*\nc")
    assert len(variants) == 8
    assert "*b*" in variants and "b" in variants and "a\n*b*" in variants


def test_paragraphs_reject_empty_middle_paragraph():
    inst = Instruction("length:paragraphs", {"n": 2})
    assert not inst.check("one\n***\n***\ntwo")
    assert inst.check("***\none\n***\ntwo\n***")  # dividers at the ends are tolerated


def test_json_rejects_bare_scalar_and_accepts_list():
    inst = Instruction("format:json")
    assert not inst.check("42")
    assert inst.check(json.dumps([1, 2]))


def test_count_sentences():
    assert count_sentences("One. Two! Three? four") == 4
    assert count_sentences("") == 0


def test_sampled_instructions_never_conflict():
    rng = random.Random(1)
    for _ in range(300):
        chosen = sample_instructions(rng, 3)
        ids = [i.type_id for i in chosen]
        assert len(set(ids)) == len(ids)
        for a in ids:
            for b in ids:
                if a != b:
                    assert compatible(a, b), (a, b)
    assert not compatible("case:lowercase", "case:uppercase")
    assert not compatible("format:json", "format:bullets")


def test_generated_cases_distinct_and_deterministic():
    a = generate_instruction_cases(0, 200)
    b = generate_instruction_cases(0, 200)
    assert [c.prompt for c in a] == [c.prompt for c in b]
    assert len({c.prompt for c in a}) == 200
    assert [c.prompt for c in generate_instruction_cases(1, 50)] != [c.prompt for c in a[:50]]
    assert all(1 <= len(c.instructions) <= 3 for c in a)


def test_render_prompt_puts_instructions_after_task():
    insts = [Instruction("format:bullets", {"n": 2}), Instruction("punctuation:no_comma")]
    prompt = render_prompt("Write a poem about rain.", insts)
    assert prompt.startswith("Write a poem about rain. Your answer must contain exactly 2 bullet points")
    assert "\nIn your entire response, refrain from the use of any commas." in prompt


def _score(strict: dict, loose: dict) -> Score:
    return Score(gold=0.0, passed=all(strict.values()), details={"strict": strict, "loose": loose})


def test_instruction_metrics():
    scores = [
        _score({"a": True, "b": False}, {"a": True, "b": True}),
        _score({"a": True}, {"a": True}),
        Score(gold=1.0, passed=True, details={"expected": "Paris"}),  # other kinds are ignored
    ]
    m = instruction_metrics(scores)
    assert m == {
        "prompt_strict": 0.5, "prompt_loose": 1.0,
        "instruction_strict": pytest.approx(2 / 3), "instruction_loose": 1.0,
    }
    assert per_type_accuracy(scores) == {"a": 1.0, "b": 0.0}
    assert per_type_accuracy(scores, "loose") == {"a": 1.0, "b": 1.0}
    with pytest.raises(ValueError):
        instruction_metrics([])


def _oracle(instructions):
    """A response built to satisfy every instruction of a prompt (proves the combination is satisfiable)."""
    k = {i.type_id: i.kwargs for i in instructions}
    parts = []
    if "keywords:include" in k:
        parts += k["keywords:include"]["keywords"]
    if "keywords:frequency" in k:
        parts += [k["keywords:frequency"]["word"]] * k["keywords:frequency"]["n"]
    if "format:placeholders" in k:
        parts += ["[name]"] * k["format:placeholders"]["n"]
    if "format:highlights" in k:
        parts += ["*bold*"] * k["format:highlights"]["n"]
    if "keywords:letter_frequency" in k:
        parts.append(k["keywords:letter_frequency"]["letter"] * k["keywords:letter_frequency"]["n"])
    body = " ".join(parts + "rain and snow rest on tall trees near the old stone island".split())
    if k.get("length:words", {}).get("relation") == "at least":
        body += " more" * k["length:words"]["n"]
    if "format:json" in k:
        text = json.dumps({"text": body})
        return text.upper() if "case:uppercase" in k else text
    body += "."
    if k.get("length:sentences", {}).get("relation") == "at least":
        body += " Yes." * k["length:sentences"]["n"]
    if "format:bullets" in k:
        body += "\n" + "\n".join(f"* point {j}" for j in range(k["format:bullets"]["n"]))
    text = body
    if "length:paragraphs" in k:
        text = "\n***\n".join([body] + ["another paragraph."] * (k["length:paragraphs"]["n"] - 1))
    if "format:sections" in k:
        text = "\n".join(f"SECTION {j + 1}\n" + (body if j == 0 else "more text.")
                         for j in range(k["format:sections"]["n"]))
    if "format:title" in k:
        text = "<<the title>>\n" + text
    if "start:first_word" in k:
        text = k["start:first_word"]["word"] + " " + text
    if "content:postscript" in k:
        text += "\nP.S. bye."
    if "end:phrase" in k:
        text += " " + k["end:phrase"]["phrase"]
    text = text.lower() if "case:lowercase" in k else text.upper() if "case:uppercase" in k else text
    return f'"{text}"' if "format:quotation" in k else text


def test_every_generated_prompt_is_satisfiable():
    cases = generate_instruction_cases(0, 1000)
    seen_types = set()
    for case in cases:
        response = _oracle(case.instructions)
        assert all(i.check(response) for i in case.instructions), (case.prompt, response)
        seen_types.update(i.type_id for i in case.instructions)
    assert seen_types == set(TYPE_IDS)
