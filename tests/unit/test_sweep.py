"""The sweep's plan and summary (superalign.sweep), without running any stage."""

from __future__ import annotations

import json

import pytest

from superalign.config import ConfigError, load_config
from superalign.records import Metric, write_jsonl
from superalign.sweep import Cell, SweepError, grid_points, headline, parse_grid, plan, summarize


def _make(overrides, seed):
    return load_config("smoke", overrides=overrides, seed=seed)


def test_parse_grid_reads_comma_lists_and_yaml_lists():
    grid = parse_grid(["train.dpo.beta=0.05,0.1", "generalize.methods=[[naive], [naive, confidence]]"])
    assert grid == {"train.dpo.beta": [0.05, 0.1], "generalize.methods": [["naive"], ["naive", "confidence"]]}
    assert grid_points(grid)[1] == {"train.dpo.beta": 0.05, "generalize.methods": ["naive", "confidence"]}
    assert len(grid_points(grid)) == 4 and grid_points({}) == [{}]


@pytest.mark.parametrize("text", ["train.dpo.beta", "=1,2", "train.dpo.beta=", "a=[1, 2"])
def test_a_bad_grid_is_one_line_naming_it(text):
    with pytest.raises(SweepError, match="--grid"):
        parse_grid([text])


def test_plan_runs_the_stage_and_what_it_reads_once_per_point_and_seed(tmp_path):
    cells = plan("validate", [0, 1], {"validate.n_cases": [4, 6]}, _make, tmp_path)
    assert [(c.point["validate.n_cases"], c.seed) for c in cells] == [(4, 0), (4, 1), (6, 0), (6, 1)]
    assert all(c.config.stages == ["train", "validate"] for c in cells)  # validate reads the train stage's policy
    assert cells[2].config.validate.n_cases == 6 and cells[1].config.seed == 1
    assert len({c.run_dir for c in cells}) == 4  # one run directory each, as `superalign run` would make


def test_plan_refuses_repeated_seeds_and_unknown_keys_before_any_work(tmp_path):
    with pytest.raises(SweepError, match="seeds repeat"):
        plan("baseline", [0, 0], {}, _make, tmp_path)
    with pytest.raises(ConfigError, match="baseline.no_such_key"):
        plan("baseline", [0], {"baseline.no_such_key": [1]}, _make, tmp_path)
    assert not any(tmp_path.iterdir())  # nothing half-written


def _cell(tmp_path, seed: int, values: dict[str, float]) -> Cell:
    run_dir = tmp_path / f"run-{seed}"
    run_dir.mkdir()
    write_jsonl(run_dir / "metrics.jsonl", [Metric(stage="train", name=k, value=v, model="m") for k, v in values.items()]
                + [Metric(stage="baseline", name="gold.mean", value=0.5, model="m")])
    return Cell({}, seed, None, run_dir)


def test_summary_gives_the_mean_a_t_interval_and_a_bootstrap_from_five_seeds(tmp_path):
    gains = [0.10, 0.20, 0.15]
    cells = [_cell(tmp_path, s, {"dpo.gold_gain": g, "dpo.win_rate": w}) for s, (g, w) in
             enumerate(zip(gains, [0.98, 1.0, 0.99]))]
    rows = {r["metric"]: r for r in summarize("train", cells)}
    assert set(rows) == {"dpo.gold_gain", "dpo.win_rate"}  # the other stage's metrics are not this sweep's
    gain = rows["dpo.gold_gain"]
    assert gain["mean"] == pytest.approx(0.15) and gain["n"] == 3 and gain["seeds"] == [0, 1, 2]
    # t(0.975, 2) = 4.303, s = 0.05: 0.15 ± 4.303 * 0.05 / sqrt(3)
    assert gain["t_low"] == pytest.approx(0.15 - 0.1242, abs=1e-3) and gain["boot_low"] is None
    assert rows["dpo.win_rate"]["t_high"] == 1.0  # a rate's interval is clipped to [0, 1]
    more = [_cell(tmp_path, s, {"dpo.gold_gain": 0.1 + 0.01 * s}) for s in range(3, 8)]
    (row,) = summarize("train", more)
    assert row["boot_low"] is not None and row["boot_low"] <= row["mean"] <= row["boot_high"]
    assert [r["metric"] for r in headline(summarize("train", cells))] == ["dpo.gold_gain", "dpo.win_rate"]


def test_two_seeds_give_no_interval(tmp_path):
    cells = [_cell(tmp_path, s, {"dpo.gold_gain": 0.1 * s}) for s in range(2)]
    (row,) = summarize("train", cells)
    assert row["t_low"] is None and row["t_high"] is None
    json.dumps(row)  # the summary is written as JSON
