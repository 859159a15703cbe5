"""The world's assistance tasks: quote checks, coding tasks with hidden tests run under limits, planted flaws with
known locations, and hidden-information passages."""

from __future__ import annotations

import pytest

from superalign.world.code import TASKS, coding_tasks, extract_code, run_tests
from superalign.world.flaws import CATEGORY_OF, flaw_items, match_flags, sentence_spans
from superalign.world.passages import debate_questions
from superalign.world.quotes import check_quote, extract_quotes

SOURCE = "The capital of France is Paris.  Mei Chen keeps an otter at home!"


@pytest.mark.parametrize("quote,status", [
    ("capital of France is Paris", "exact"),
    ("the CAPITAL of france, is paris", "normalized"),  # case and punctuation
    ("Paris. Mei  Chen keeps", "normalized"),  # whitespace across a sentence end
    ("Mei Chen keeps a parrot at home", "unverified"),  # fabricated
    ("capital of Spain is Paris", "unverified"),  # a near miss is not the passage
    ("is", "unverified"),  # too short to mean anything
])
def test_quote_verification(quote, status):
    check = check_quote(SOURCE, quote)
    assert check.status == status
    if check.verified:  # the span found is the quote, start to end, up to case, spaces and punctuation
        alnum = lambda t: "".join(c for c in t.lower() if c.isalnum())  # noqa: E731
        assert alnum(SOURCE[check.start:check.end]) == alnum(quote)


def test_quotes_are_read_from_tags_first_then_double_quotes():
    assert extract_quotes('See <quote>a b</quote> and <quote> c </quote>.') == ["a b", "c"]
    assert extract_quotes('It says "Mei keeps an otter" and “more”.') == ["Mei keeps an otter", "more"]
    assert extract_quotes("no quotes") == []


def test_every_reference_solution_passes_and_every_planted_bug_fails():
    for task in TASKS:
        assert run_tests(task.reference, task).passed, task.name
        for i in range(len(task.bugs)):
            code, line = task.buggy(i)
            result = run_tests(code, task)
            assert not result.passed and result.error == "", (task.name, i, result)
            assert code.split("\n")[line] != task.reference.split("\n")[line]


def test_coding_task_splits_are_disjoint():
    names = [{t.name for t in coding_tasks(split)} for split in ("train", "validation", "test")]
    assert all(names) and sum(map(len, names)) == len(set().union(*names)) == len(TASKS)


def test_code_runs_with_a_time_limit_and_a_memory_limit():
    task = TASKS[0]
    spin = run_tests(f"def {task.name}(x, lo, hi):\n    while True:\n        pass", task, timeout=1)
    assert not spin.passed and ("timed out" in spin.error or "limit" in spin.error)
    hog = run_tests(f"def {task.name}(x, lo, hi):\n    return len(bytearray(2 * 1024 ** 3))", task, memory_mb=256)
    assert not hog.passed and hog.n_passed == 0


def test_code_cannot_write_outside_its_temporary_directory(tmp_path):
    task = TASKS[0]
    target = tmp_path / "escaped.txt"
    attempts = [f"open({str(target)!r}, 'w').write('x')",
                f"import os\nos.system('touch {target}')",
                f"import pathlib\npathlib.Path({str(target)!r}).write_text('x')",
                f"import shutil\nopen('a.txt', 'w').write('x')\nshutil.copy('a.txt', {str(target)!r})",
                f"import os\nopen('a.txt', 'w').write('x')\nos.rename('a.txt', {str(target)!r})"]
    for attempt in attempts:
        result = run_tests(attempt + f"\ndef {task.name}(x, lo, hi):\n    return max(lo, min(x, hi))", task)
        assert not result.passed and "sandbox" in result.error, (attempt, result)
    assert not target.exists()
    inside = run_tests(f"open('scratch.txt', 'w').write('x')\ndef {task.name}(x, lo, hi):\n    return max(lo, min(x, hi))",
                       task)
    assert inside.passed  # its own temporary directory is writable


def test_the_hidden_tests_cannot_be_gamed_from_inside():
    task = TASKS[0]
    # An object that claims to equal anything is compared by its JSON, here, where the expected answers are.
    always = "class E:\n    def __eq__(self, other):\n        return True\n"
    assert not run_tests(always + f"def {task.name}(x, lo, hi):\n    return E()", task).passed
    # The child never receives the expected answers: printing a result line, even with the nonce, proves nothing.
    forged = ("import sys\nnonce = sys.modules['__main__']._nonce\n"
              "print(nonce + '{\"error\": \"\", \"outputs\": [\"0\", \"0\", \"0\", \"0\", \"0\"]}')\n")
    assert not run_tests(forged + f"def {task.name}(x, lo, hi):\n    return 0", task).passed
    # Walking frames up to the harness, or reaching the guard through gc, is refused.
    walk = "try:\n    raise ValueError\nexcept ValueError as e:\n    frame = e.__traceback__.tb_frame\n"
    for attempt in (walk, "import gc\n"):
        result = run_tests(attempt + f"def {task.name}(x, lo, hi):\n    return max(lo, min(x, hi))", task)
        assert not result.passed and "sandbox" in result.error, (attempt, result)


def test_the_childs_output_is_capped():
    task = TASKS[0]
    flood = run_tests("print('x' * 10 ** 7)\n" + f"def {task.name}(x, lo, hi):\n    return max(lo, min(x, hi))", task)
    assert not flood.passed and "limit" in flood.error


def test_extract_code_takes_the_first_fenced_block():
    assert extract_code("Here:\n```python\ndef f():\n    return 1\n```\nDone") == "def f():\n    return 1\n"
    assert extract_code("def f(): pass") == "def f(): pass"


def test_flaw_items_have_one_located_flaw_of_their_kind_and_clean_ones_have_none():
    items = flaw_items(0, "test", 48)
    assert len(items) == 48 and len({i.id for i in items}) == 48
    for item in items:
        if item.flawed:
            (flaw,) = item.flaws
            assert flaw.category == CATEGORY_OF[item.kind]
            assert 0 <= flaw.start < flaw.end <= len(item.response)
            assert item.unit_of(flaw.start, flaw.end) is not None  # a judge reading that unit sees it
        assert item.units and all(0 <= s < e <= len(item.response) for s, e in item.units)
    assert sum(i.flawed for i in items) == 36
    assert {i.kind for i in items} == {"fact", "instruction", "policy", "code"}


def test_planted_code_flaws_fail_the_hidden_tests_and_clean_code_passes():
    from superalign.world.code import TASKS_BY_NAME

    for item in [i for i in flaw_items(0, "test", 24) if i.kind == "code"]:
        assert run_tests(extract_code(item.response), TASKS_BY_NAME[item.source]).passed == (not item.flawed)


def test_flaw_items_are_deterministic_and_splits_differ():
    a, b = flaw_items(3, "test", 12), flaw_items(3, "test", 12)
    assert [(i.response, i.flaws) for i in a] == [(i.response, i.flaws) for i in b]
    assert {i.response for i in flaw_items(3, "train", 12)} != {i.response for i in a}


def test_a_flag_must_lie_mostly_on_the_flaw():
    item = next(i for i in flaw_items(0, "test", 12) if i.kind == "fact" and i.flawed)
    assert match_flags(item, [(0, len(item.response), "false_fact")]).n_found == 0  # the whole response: no credit


def test_flags_score_against_known_flaws():
    item = next(i for i in flaw_items(0, "test", 12) if i.kind == "fact" and i.flawed)
    flaw = item.flaws[0]
    clean_unit = next(u for u in item.units if not (u[0] < flaw.end and flaw.start < u[1]))
    assert match_flags(item, [(flaw.start, flaw.end, "false_fact")]).n_found == 1
    assert match_flags(item, [(flaw.start + 2, flaw.start + 5, None)]).category_right == 0
    wrong = match_flags(item, [(*clean_unit, "false_fact")])
    assert wrong.n_found == 0 and wrong.false_flags == 1
    both = match_flags(item, [(flaw.start, flaw.end, "false_fact"), (*clean_unit, None)])
    assert both.n_found == 1 and both.false_flags == 1 and both.category_right == 1


def test_sentence_spans_cover_sentences_without_their_spaces():
    text = "One.  Two is here!\nThree"
    assert [text[s:e] for s, e in sentence_spans(text)] == ["One.", "Two is here!", "Three"]


def test_passages_hide_the_answer_and_plant_both_distractors():
    for q in debate_questions(0, "test", 20):
        right, wrong = q.answers[q.correct], q.answers[1 - q.correct]
        assert right in q.passage and wrong in q.passage
        proving = [i for i, f in enumerate(q.facts) if f and f.subject == q.subject and f.relation == q.relation]
        assert len(proving) == 1 and q.facts[proving[0]].obj == right
        s, e = q.sentences[proving[0]]
        assert q.decisive_for(s, e) == q.correct
        distractors = [f for f in q.facts if f and f.obj == wrong]
        assert {f.relation for f in distractors} == {q.relation, f"distractor:{q.relation}"}
        assert all(q.decisive_for(*span) is None for span, f in zip(q.sentences, q.facts) if f and f.obj == wrong)
    assert {q.correct for q in debate_questions(0, "test", 20)} == {0, 1}
