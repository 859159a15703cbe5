"""Tuning scripts select on a dev split: the prompts the stage reports on are out of their reach."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_explore_dpo_measures_on_a_dev_split_disjoint_from_the_stage_test_prompts():
    from superalign.rlhf import Config, split_tasks
    from superalign.world import World

    explore = _load(ROOT / "experiments" / "train" / "explore_dpo.py")
    _, tasks, heldout = explore.setup()
    with pytest.raises(KeyError):
        tasks["test"]
    stage = split_tasks(World(0), Config().heldout_types, Config(eval={"n_instruction": 200, "n_curve": 104}))
    dev = {t.id for t in tasks["dev"]}
    assert len(dev) == explore.N_TEST
    assert not dev & {t.id for t in stage["test"]}  # every prompt the stage could report on
    assert not dev & {t.id for t in stage["curve"]} and not dev & {t.id for t in stage["train"]}
