"""`superalign train METHOD` (alias `rlhf`) end to end on tiny models, with simulated and with file-based
preferences."""

from __future__ import annotations

import json

import pytest

from superalign.records import Preference, write_jsonl
from tests.integration.test_cli import superalign


def _metrics(run_dir) -> dict:
    return json.loads((run_dir / "results.json").read_text())["metrics"]["train"]


def test_dpo_from_a_preference_file(tmp_path):
    prefs = [Preference(task_id=f"t{i}", prompt=[{"role": "user", "content": f"Say something about {i}."}],
                        chosen="a calm, kind answer", rejected="NO", labeler="human:test") for i in range(12)]
    path = write_jsonl(tmp_path / "prefs.jsonl", prefs)
    proc = superalign("train", "dpo", "--profile", "smoke", "--preferences", str(path), home=tmp_path / "home",
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "runs").glob("[!.]*")
    metrics = _metrics(run_dir)
    assert "dpo.gold_gain" in metrics and "reward_model.test_accuracy" in metrics
    assert "sft.gold" not in metrics  # only the asked-for method ran
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["train"]["preferences_file"] == str(path.resolve())


@pytest.mark.parametrize("content, message", [("", "empty"), ("{not json\n", "prefs.jsonl:1")])
def test_bad_preference_file_stops_with_a_clear_message(tmp_path, content, message):
    path = tmp_path / "prefs.jsonl"
    path.write_text(content)
    proc = superalign("rlhf", "dpo", "--profile", "smoke", "--preferences", str(path), home=tmp_path / "home",
                      cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_missing_preference_file(tmp_path):
    proc = superalign("train", "rloo", "--profile", "smoke", "--preferences", "nope.jsonl", home=tmp_path / "home",
                      cwd=tmp_path)
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_online_dpo_with_the_labeler_as_judge(tmp_path):
    proc = superalign("rlhf", "online-dpo", "--profile", "smoke", "--set", "train.online_dpo.judge=labeler",
                      home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "runs").glob("[!.]*")
    metrics = _metrics(run_dir)
    assert "online_dpo.gold_gain" in metrics and "dpo.gold" not in metrics
    lines = [json.loads(line) for line in (run_dir / "records/train.jsonl").read_text().splitlines()]
    assert {rec["method"] for rec in lines if rec["type"] == "optimization_point"} == {"online_dpo"}


def test_labeler_judge_with_a_preference_file_is_a_config_error(tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", [Preference(
        task_id="t", prompt=[{"role": "user", "content": "q"}], chosen="a", rejected="b", labeler="human:test")])
    proc = superalign("train", "online-dpo", "--profile", "smoke", "--preferences", str(path),
                      "--set", "train.online_dpo.judge=labeler", home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 2
    assert "online_dpo.judge=reward_model" in proc.stderr and "Traceback" not in proc.stderr
