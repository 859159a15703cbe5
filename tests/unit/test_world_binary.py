"""Tasks for weak-to-strong: world tasks with two classes and no labels in sight, files with clear errors."""

from __future__ import annotations

import json
import random

import pytest

from superalign.world import World
from superalign.world import responses as R
from superalign.world.binary import (
    _fact_text,
    _policy_text,
    _response_text,
    load_file_task,
    world_task,
)
from superalign.world.vault import (
    Example,
    LabelVault,
    TaskData,
    check_task,
    split_groups,
)
from superalign.world.vault import TaskDataError as W2SDataError


@pytest.mark.parametrize("name", ["fact", "instruction", "policy", "reward"])
def test_world_tasks_have_two_classes_and_disjoint_groups(name):
    task = world_task(name, 0, 40, 20)
    check_task(task)  # raises on a missing class
    assert task.pool and task.test
    assert not {e.group for e in task.pool} & {e.group for e in task.test}  # a fact / prompt never straddles
    assert all(len(e.texts) == (2 if name == "reward" else 1) for e in task.pool + task.test)
    assert len({e.id for e in task.pool + task.test}) == len(task.pool) + len(task.test)


def test_examples_carry_no_label():
    task = world_task("fact", 0, 20, 8)
    fields = set(Example.__dataclass_fields__)
    assert fields == {"id", "texts", "group"}
    assert not hasattr(task.vault, "labels") and not any("label" in k for k in vars(task.vault) if k != "log"
                                                         and not k.startswith("_LabelVault"))


def test_a_saved_vault_loads_back_every_label_and_only_its_owner_reads_the_file(tmp_path):
    # The evaluation server serves labels from the file it wrote: a pool or test label lost or flipped on the
    # way would change every score the researcher's agent is given.
    import os
    import stat

    task = world_task("fact", 0, 40, 20)
    task.vault.save(tmp_path / "fact.json")
    loaded = LabelVault.load(tmp_path / "fact.json")
    everything = task.pool + task.test
    assert loaded.ids() == task.vault.ids() and {e.id for e in everything} <= loaded.ids()
    assert loaded.reveal(everything, "check").tolist() == task.vault.reveal(everything, "check").tolist()
    assert stat.S_IMODE(os.stat(tmp_path / "fact.json").st_mode) == 0o600


def test_reward_pairs_are_labelled_by_gold():
    task = world_task("reward", 0, 30, 10)
    world = World(0)
    evaluator = world.evaluator()
    by_id = {t.id: t for t in world.tasks("instruction", None, "train") + world.tasks("instruction", None, "validation")}
    for e in task.pool[:10]:
        t = by_id[e.id.removesuffix("-pair")]
        gold = [evaluator.score(t, text.split("\nResponse: ", 1)[1]).gold for text in e.texts]
        assert task.vault.reveal([e], "test")[0] == int(gold[0] > gold[1]) and gold[0] != gold[1]


def test_prompt_templates_snapshot():
    # Exact snapshots (DESIGN.md style rule 9): a change here changes every cached feature and result.
    assert _fact_text("Paris is the capital of France.") == "Paris is the capital of France."
    assert _response_text("Write a poem.", "Roses.") == "Instruction: Write a poem.\nResponse: Roses."
    msgs = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}]
    assert _policy_text(msgs, "Hello!") == "User: Hi\nAssistant: Hello!"  # the last user turn only


def test_composed_instruction_responses_mostly_meet_their_intent():
    world = World(0)
    ev = world.evaluator()
    rng = random.Random(0)
    hits = total = 0
    for task in world.tasks("instruction", 60, "train"):
        case = ev._truth[task.id][1]
        intent = R.instruction_intent(len(case.instructions), rng)
        response = R.instruction_response(case, intent, rng)
        hits += ev.score(task, response).passed == all(intent)
        total += 1
    assert hits / total > 0.85


def test_policy_replies_violate_when_meant_to():
    world = World(0)
    ev = world.evaluator()
    rng = random.Random(0)
    for task in world.tasks("policy", 30, "train"):
        case = ev._truth[task.id][1]
        assert not ev.score(task, R.policy_response(case, True, rng)).passed
        assert ev.score(task, R.policy_response(case, False, rng)).passed


def test_split_groups_is_seeded_and_keeps_groups_together():
    ex = [Example(f"e{i}", ("t",), f"g{i // 2}") for i in range(40)]
    a1, b1 = split_groups(ex, 0.5, 0)
    a2, _ = split_groups(ex, 0.5, 0)
    a3, _ = split_groups(ex, 0.5, 1)
    assert a1 == a2 and a1 != a3 and len(a1) == len(b1) == 20
    assert not {e.group for e in a1} & {e.group for e in b1}


# --- files -------------------------------------------------------------------------------------------


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_load_jsonl_and_csv(tmp_path):
    rows = [{"text": f"review {i}", "label": ["yes", "no"][i % 2]} for i in range(40)]
    task = load_file_task(_jsonl(tmp_path / "d.jsonl", rows))
    assert task.name == "file:d" and len(task.pool) + len(task.test) == 40 and len(task.test) == 10
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("sentence,positive\n" + "".join(f"s{i},{i % 2}\n" for i in range(20)))
    task = load_file_task(csv_path, text_column="sentence", label_column="positive")
    assert task.vault.class_counts(task.pool + task.test) == (10, 10)


def test_pairwise_file(tmp_path):
    rows = [{"a": f"x{i}", "b": f"y{i}", "label": i % 2} for i in range(20)]
    task = load_file_task(_jsonl(tmp_path / "p.jsonl", rows), text_column="a", text_b_column="b")
    assert task.pairwise and all(len(e.texts) == 2 for e in task.pool)


def test_one_class_is_refused(tmp_path):
    rows = [{"text": f"t{i}", "label": 1} for i in range(20)]
    with pytest.raises(W2SDataError, match="every label is positive"):
        load_file_task(_jsonl(tmp_path / "one.jsonl", rows))


def test_missing_label_column_names_the_columns(tmp_path):
    rows = [{"text": f"t{i}", "target": i % 2} for i in range(20)]
    with pytest.raises(W2SDataError, match=r"column\(s\) 'label' not found.*'target'"):
        load_file_task(_jsonl(tmp_path / "cols.jsonl", rows))


def test_mismatched_rows_name_the_row(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 2} for i in range(10)] + [{"text": "odd one", "lbl": 1}]
    with pytest.raises(W2SDataError, match="row 11: column 'label' is missing"):
        load_file_task(_jsonl(tmp_path / "mixed.jsonl", rows))


def test_non_binary_labels_are_refused(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 3} for i in range(12)]
    with pytest.raises(W2SDataError, match="row 3, column 'label': label 2 is not binary"):
        load_file_task(_jsonl(tmp_path / "three.jsonl", rows))


def test_bad_files(tmp_path):
    with pytest.raises(W2SDataError, match="no such file"):
        load_file_task(tmp_path / "nope.jsonl")
    (tmp_path / "x.parquet").write_text("")
    with pytest.raises(W2SDataError, match="unsupported format"):
        load_file_task(tmp_path / "x.parquet")
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": 1}\n{oops\n')
    with pytest.raises(W2SDataError, match="bad.jsonl:2: not valid JSON"):
        load_file_task(tmp_path / "bad.jsonl")


def test_a_test_set_with_one_class_is_refused():
    ex = [Example(f"e{i}", ("t",), f"g{i}") for i in range(12)]
    labels = {e.id: int(i < 8 and i % 2 == 0) for i, e in enumerate(ex)}  # the last 4 are all negative
    task = TaskData("t", "t", ex[:8], ex[8:], LabelVault(labels))
    with pytest.raises(W2SDataError, match="test set has 0 positive"):
        check_task(task)
