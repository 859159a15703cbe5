"""The stage contract end to end: a stage added from outside runs, caches and reports like the built-in ones;
changing one stage's config reruns that stage alone; an edited input file reruns the stage that read it; bad
names stop before any work with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from superalign import cli, stages
from tests.integration import toy_stage


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """The toy stage registered after baseline for one test; SUPERALIGN_HOME in a temporary folder."""
    monkeypatch.setenv("SUPERALIGN_HOME", str(tmp_path / "home"))
    stages.register(stages.Stage("toy", "tests.integration.toy_stage", "a throwaway stage"), after="baseline")
    toy_stage.RUNS.clear()
    yield toy_stage.RUNS
    stages.unregister("toy")


def _run(tmp_path: Path, *args: str) -> int:
    return cli.main(["run", "--profile", "smoke", "--device", "cpu", "--out", str(tmp_path / "runs"), *args])


def _run_dirs(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "runs").glob("[!.]*"))


def test_a_registered_stage_runs_caches_and_reports(toy, tmp_path, capsys):
    assert _run(tmp_path, "--set", "stages=[baseline,toy]") == 0
    out = capsys.readouterr().out
    # its plan is said before the first stage starts; the run ends with the time table
    assert out.index("toy: will score 3 items") < out.index("baseline: started") < out.index("toy: started")
    assert "time (a reused stage" in out and "total" in out.split("time (a reused stage")[1]
    (run_dir,) = _run_dirs(tmp_path)
    assert toy == [{"n_items": 3, "device": "cpu"}]  # its smoke profile applied
    assert len((run_dir / "records" / "toy.jsonl").read_text().splitlines()) == 3
    assert json.loads((run_dir / "stages" / "toy.json").read_text())["results"] == {"items": 3}
    html = (run_dir / "report.html").read_text()
    assert 'id="stage-toy"' in html and "toy.gold" in html and "Evaluations" in html
    assert _run(tmp_path, "--set", "stages=[baseline,toy]") == 0
    out = capsys.readouterr().out
    assert len(toy) == 1 and "toy: reusing finished results" in out and "will score" not in out


def test_a_registered_stage_gets_a_subcommand_with_flags_from_its_config(toy, tmp_path):
    assert cli.main(["toy", "--profile", "smoke", "--n-items", "5", "--device", "cpu",
                     "--out", str(tmp_path / "runs")]) == 0
    assert toy == [{"n_items": 5, "device": "cpu"}]
    (run_dir,) = _run_dirs(tmp_path)
    assert json.loads((run_dir / "config.json").read_text())["config"]["stages"] == ["toy"]


def test_changing_one_stage_reruns_that_stage_alone(toy, tmp_path, capsys):
    assert _run(tmp_path, "--set", "stages=[baseline,toy]") == 0
    baseline_records = next(iter(_run_dirs(tmp_path))) / "records" / "baseline.jsonl"
    capsys.readouterr()
    assert _run(tmp_path, "--set", "stages=[baseline,toy]", "--set", "toy.n_items=4") == 0
    out = capsys.readouterr().out
    assert "baseline: reusing finished results" in out and "toy: started" in out
    assert [r["n_items"] for r in toy] == [3, 4]
    first, second = _run_dirs(tmp_path)  # two configs, two run directories; baseline copied, not recomputed
    assert (first / "records" / "baseline.jsonl").read_text() == (second / "records" / "baseline.jsonl").read_text()
    assert baseline_records.is_file()


def test_an_edited_input_file_reruns_the_stage_that_read_it(toy, tmp_path, capsys):
    data = tmp_path / "extra.txt"
    data.write_text("one\ntwo\n")
    args = ("--set", "stages=[baseline,toy]", "--set", f"toy.path={data}")
    assert _run(tmp_path, *args) == 0 and _run(tmp_path, *args) == 0
    assert len(toy) == 1  # unchanged file: reused
    data.write_text("one\ntwo\nthree\n")  # same path, same config, new content
    capsys.readouterr()
    assert _run(tmp_path, *args) == 0
    out = capsys.readouterr().out
    assert len(toy) == 2 and "baseline: reusing finished results" in out
    (run_dir,) = _run_dirs(tmp_path)
    assert len((run_dir / "records" / "toy.jsonl").read_text().splitlines()) == 3 + 3


def test_a_stage_key_changes_with_the_code(monkeypatch):
    from superalign import pipeline

    before = pipeline.stage_key("toy", {"n_items": 2}, {}, "cpu")
    monkeypatch.setattr(pipeline, "code_version", lambda: "another version of superalign")
    assert pipeline.stage_key("toy", {"n_items": 2}, {}, "cpu") != before


def test_train_without_a_method_runs_the_profiles_methods():
    from superalign.rlhf import cli as train_cli

    args = cli.build_parser().parse_args(["train", "--profile", "smoke"])
    assert args.method == [] and train_cli.overrides(args) == {}
    args = cli.build_parser().parse_args(["train", "dpo", "online-dpo"])
    assert train_cli.overrides(args) == {"methods": ["dpo", "online_dpo"]}
    assert train_cli.overrides(cli.build_parser().parse_args(["train", "reward-model"])) == {"methods": []}


def test_the_train_stage_hashes_its_preference_file(tmp_path):
    from superalign.config import load_config

    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text("")
    config = load_config("smoke", overrides=[f"train.preferences_file={prefs}"])
    assert stages.get("train").inputs(config.train).files == [prefs]
    assert stages.get("train").inputs(config.train).models == ["tiny-llama", "tiny-encoder"]


def superalign(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SUPERALIGN_HOME": str(cwd / "home")}
    return subprocess.run([sys.executable, "-m", "superalign", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("args, message", [
    (["run", "--profile", "smoke", "--set", "stages=[baseline,nope]"], "unknown stage 'nope'"),
    (["run", "--profile", "smoke", "--set", "train.dpo.betta=0.2"],
     "train.dpo.betta: unknown key; the keys of train.dpo are: beta, lr"),
    (["run", "--profile", "smoke", "--model", "does-not-exist"], "unknown model 'does-not-exist'"),
    (["train", "dpo", "--profile", "smoke", "--preferences", "missing.jsonl"], "missing.jsonl: no such file"),
    (["run", "--profile", "smoke", "--set", "generalize.dataset.path=missing.csv", "--set", "stages=[generalize]"],
     "input file missing.csv does not exist"),
    (["run", "--profile", "smoke", "--config", "missing.yaml"], "missing.yaml: no such file"),
    (["models", "pull", "does-not-exist"], "unknown model 'does-not-exist'"),
    (["train", "dpp", "--profile", "smoke"], "unknown method 'dpp'"),
    (["generalize", "--profile", "smoke", "--max-length", "[x"], "--max-length '[x'"),
    # From a newcomer's session (each crashed, started work or left files behind before):
    (["run", "--profile", "smoke", "--set", "stages=[]"], "stages: no stage to run"),
    (["run", "--profile", "smoke", "--model", ""], "model: give a model name"),
    (["train", "dpo", "--profile", "smoke", "--methods", "sft"],
     "--methods and the command's other arguments both set train.methods: give it once"),
    (["world", "--kind", "fact", "-n", "100000"], "-n 100000: World(seed=0) has only"),
    (["audit", "tiny-llama", "extra"], "unexpected argument(s) after the target: extra"),
    (["redteam", "tiny-llama", "extra"], "unexpected argument(s) after the target: extra"),
    (["redteam", "nosuch"], "unknown model 'nosuch'"),
    (["studio", "stats", "pilot"], "no studio database at"),
    (["research", "--profile", "smoke", "--proposer", "chat", "--proposer-role", "nosuch"], "unknown model 'nosuch'"),
    pytest.param(["run", "--profile", "smoke", "--device", "cuda"], "torch sees no CUDA GPU",
                 marks=pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is here")),
])
def test_bad_input_stops_before_any_work_with_one_line(tmp_path, args, message):
    proc = superalign(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "studio.db").exists()


@pytest.mark.parametrize("command", [["train", "dpo", "--profile", "smoke", "--preferences", "prefs.jsonl"],
                                     ["run", "--profile", "smoke", "--set", "train.preferences_file=prefs.jsonl"]])
def test_a_preference_file_is_validated_whole_before_any_work(tmp_path, command):
    """Issue 16 item 3: a prompt without role/content crashed `train dpo --preferences` with KeyError
    'content' after a minute of sampling; now the whole file is read before a model loads (and before
    `run` starts its baseline)."""
    good = {"type": "preference", "task_id": "t", "prompt": [{"role": "user", "content": "Hi"}],
            "chosen": "Hello!", "rejected": "Go away.", "labeler": "human:ann"}
    lines = [good] * 3 + [{**good, "prompt": [{"x": "y"}]}]
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    proc = superalign(*command, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "prefs.jsonl:4: not a valid preference record: prompt: message 0: a chat message is" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists()


def test_help_lists_every_stage_and_the_studio_without_markup(tmp_path):
    proc = superalign("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for command in ("run", "baseline", "train (rlhf)", "generalize (w2s)", "studio", "models", "config"):
        assert command in proc.stdout, command
    assert "`" not in proc.stdout


def test_report_export_and_run_check_their_folders_before_any_work(tmp_path):
    """A hand-edited config.json, one run given twice, an --out that is a file or has no folder: one line each,
    nothing written (they were tracebacks, an empty report with exit 0, or an average of a run with itself)."""
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.json").write_text('{"config": {}}')
    (tmp_path / "afile").write_text("")
    cases = [(["report", "broken"], "broken/config.json is unreadable"),
             (["report", "a", "a"], "a is given twice"),
             (["report", "a", "broken"], "broken/config.json is unreadable"),
             (["export", "a", "--out", "afile"], "--out afile: a file is there"),
             (["run", "--profile", "smoke", "--out", "afile"], "--out afile: a file is there")]
    for args, message in cases:
        proc = superalign(*args, cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "afile", "broken"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["config.json"]
