import json

import pytest
from pydantic import BaseModel

from superalign import __version__
from superalign.records import Metric, read_jsonl
from superalign.runs import Run, config_hash, load_results


class Cfg(BaseModel):
    model: str = "tiny-llama"
    lr: float = 1e-4
    stages: list[str] = ["baseline", "train"]


def test_same_config_same_dir_and_hash(tmp_path):
    a = Run.open(tmp_path, "quick", Cfg())
    b = Run.open(tmp_path, "quick", Cfg())
    assert a.path == b.path == tmp_path / f"quick-{config_hash(Cfg())}"
    assert a.config_hash == b.config_hash and len(a.config_hash) == 8
    int(a.config_hash, 16)  # hex
    saved = json.loads((a.path / "config.json").read_text())
    assert saved["config"] == Cfg().model_dump(mode="json")
    assert saved["config_hash"] == a.config_hash and saved["superalign_version"] == __version__


def test_different_config_different_dir(tmp_path):
    a = Run.open(tmp_path, "quick", Cfg())
    b = Run.open(tmp_path, "quick", Cfg(lr=2e-4))
    assert a.config_hash != b.config_hash and a.path != b.path
    # key order does not matter, values do
    assert config_hash({"x": 1, "y": 2}) == config_hash({"y": 2, "x": 1}) != config_hash({"x": 1, "y": 3})


def test_reopen_with_colliding_hash_but_other_config_refuses(tmp_path):
    run = Run.open(tmp_path, "quick", Cfg())
    saved = json.loads((run.path / "config.json").read_text())
    saved["config"]["lr"] = 0.5  # as if another config had landed on the same 8 hex digits
    (run.path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(RuntimeError, match="different config"):
        Run.open(tmp_path, "quick", Cfg())


def test_bad_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not allowed"):
        Run.open(tmp_path, "../escape", Cfg())
    run = Run.open(tmp_path, "quick", Cfg())
    with pytest.raises(ValueError, match="not allowed"):
        run.mark_done("a/b", {})


def test_stage_done_after_mark_done_and_not_when_half_written(tmp_path):
    run = Run.open(tmp_path, "quick", Cfg())
    assert not run.stage_done("baseline")
    run.mark_done("baseline", {"accuracy": 0.5, "path": tmp_path})
    assert run.stage_done("baseline")
    assert run.stage_results("baseline") == {"accuracy": 0.5, "path": str(tmp_path)}
    assert Run.open(tmp_path, "quick", Cfg()).stage_done("baseline")  # a rerun finds it
    full = run.stage_path("baseline").read_text()
    run.stage_path("train").write_text(full.replace("baseline", "train")[: len(full) // 2])
    assert not run.stage_done("train")
    assert run.stage_results("train") is None
    assert not list((run.path / "stages").glob("*.tmp"))


def _m(stage, name, value, **kw):
    return Metric(stage=stage, name=name, value=value, **kw)


def test_replace_metrics_does_not_duplicate_and_keeps_order(tmp_path):
    run = Run.open(tmp_path, "quick", Cfg())
    run.log_metrics([_m("baseline", "a", 0.1)])
    run.log_metrics([_m("train", "a", 0.2)])
    run.replace_metrics("baseline", [_m("baseline", "a", 0.3), _m("baseline", "b", 0.4)])
    run.replace_metrics("baseline", [_m("baseline", "a", 0.5)])
    got = [(m.stage, m.name, m.value) for m in read_jsonl(run.metrics_path)]
    assert got == [("baseline", "a", 0.5), ("train", "a", 0.2)]
    run.replace_metrics("generalize", [_m("generalize", "pgr", 0.3)])  # a new stage goes last
    assert [m.stage for m in run.metrics()] == ["baseline", "train", "generalize"]
    with pytest.raises(ValueError, match="other stages"):
        run.replace_metrics("train", [_m("baseline", "a", 0.1)])


def test_non_finite_metric_is_refused_before_it_corrupts_metrics_jsonl(tmp_path):
    run = Run.open(tmp_path, "quick", Cfg())
    with pytest.raises(ValueError, match="pgr"):
        run.log_metrics([_m("generalize", "pgr", float("nan"))])
    assert run.metrics() == []


def test_records_path(tmp_path):
    run = Run.open(tmp_path, "quick", Cfg())
    path = run.records_path("baseline")
    assert path == run.path / "records" / "baseline.jsonl" and path.parent.is_dir()


def test_results_json(tmp_path):
    run = Run.open(tmp_path, "quick", Cfg())
    run.log_metrics([_m("baseline", "instruction.prompt_strict", 0.4, ci_low=0.3, ci_high=0.5, n=100)])
    run.log_metrics([_m("train", "gold.mean", 0.6, model="a"), _m("train", "gold.mean", 0.7, model="b")])
    run.mark_done("baseline", {"n_tasks": 100})
    path = run.write_results()
    assert path == run.path / "results.json"
    res = load_results(run.path)
    assert res["config_hash"] == run.config_hash
    assert res["stages"]["baseline"]["results"] == {"n_tasks": 100}
    assert "train" not in res["stages"]  # not finished
    assert res["metrics"]["baseline"]["instruction.prompt_strict"] == {
        "value": 0.4, "ci_low": 0.3, "ci_high": 0.5, "n": 100, "model": None,
    }  # fmt: skip
    assert res["metrics"]["train"]["gold.mean@a"]["value"] == 0.6
    assert res["metrics"]["train"]["gold.mean@b"]["value"] == 0.7
    with pytest.raises(FileNotFoundError, match="results"):
        load_results(tmp_path)
