"""The walkthrough's example records (examples/studio): current, readable, and labelable for every task."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from superalign.records import read_jsonl
from superalign.studio.items import (CampaignConfig, build_items, collect_items, read_assistance, read_sources,
                                     unreadable, unreadable_items)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "studio"


def _script():
    spec = importlib.util.spec_from_file_location("make_records", EXAMPLE / "make_records.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_records_are_what_the_script_makes():
    assert read_jsonl(EXAMPLE / "records.jsonl") == _script().records()


@pytest.mark.parametrize("task, n_items", [("pairwise", 28), ("rating", 56), ("flaw", 56), ("demonstration", 28)])
def test_every_task_gets_readable_items_with_known_answers(task, n_items):
    sources = read_sources([EXAMPLE / "records.jsonl"])
    config = CampaignConfig(task=task, gold_fraction=0.1 if task != "demonstration" else 0.0)
    assert unreadable_items(collect_items(sources, config)) == []
    items = build_items(sources, config)
    assert len(items) == n_items
    if task != "demonstration":
        assert sum(s.gold for s in items) == round(0.1 * n_items)
    if task == "pairwise":  # every pair has a better response by gold: all have a known answer
        assert all(s.truth is not None for s in items)


@pytest.mark.parametrize("text, why", [
    ("", "blank"), ("\n\n\n", "blank"), (" \t ", "blank"),
    ("w\ufffd&j\ufffd-\ufffd", "replacement or control characters"), ("ab\x07cd", "replacement or control characters"),
    ("}{)(*&^%$#@!", "mostly symbols"),
    ("The answer is 42.", None), ("42", None), ('{"title": "A day at sea"}', None), ("Line one\n\tLine two", None),
])
def test_what_counts_as_unreadable(text, why):
    assert unreadable(text) == why


def test_the_example_critiques_attach_to_example_items():
    sources = read_sources([EXAMPLE / "records.jsonl"])
    items = build_items(sources, CampaignConfig(task="pairwise"), read_assistance(EXAMPLE / "critiques.jsonl"))
    assert sum(s.assistance is not None for s in items) == 8
