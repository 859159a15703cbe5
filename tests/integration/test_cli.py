"""The CLI end to end on tiny models: the main job, its cache, its report and its errors."""

from __future__ import annotations

from html import escape as html_escape
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def superalign(*args: str, home: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SUPERALIGN_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "superalign", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    proc = superalign("run", "--profile", "smoke", "--device", "cpu", "--out", "runs", home=root / "home", cwd=root)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (root / "runs").glob("[!.]*")
    return root, run_dir, proc


def test_smoke_run_writes_a_complete_run_directory(smoke_run):
    root, run_dir, proc = smoke_run
    assert run_dir.name.startswith("smoke-tiny-llama-")
    for name in ("config.json", "metrics.jsonl", "results.json", "report.html", "records/baseline.jsonl"):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["baseline"]["model"] == "tiny-llama"
    results = json.loads((run_dir / "results.json").read_text())
    baseline = results["metrics"]["baseline"]
    for name in ("instruction.prompt_strict", "instruction.instruction_loose", "fact.accuracy",
                 "policy.violation_rate", "gold.mean"):
        m = baseline[name]
        assert 0.0 <= m["ci_low"] <= m["value"] <= m["ci_high"] <= 1.0, name
    evaluations = (run_dir / "records/baseline.jsonl").read_text().splitlines()
    assert len(evaluations) == 8 + 8 + 6  # the smoke profile's task counts
    assert "gold.mean" in proc.stdout  # the results table
    # the machine the numbers came from (greedy answers differ between machines that round differently)
    machine = json.loads((run_dir / "stages/baseline.json").read_text())["machine"]
    assert machine.startswith("cpu ") and "threads ->" in machine
    assert html_escape(machine) in (run_dir / "report.html").read_text()


def test_rerun_reuses_finished_stage(smoke_run):
    root, run_dir, _ = smoke_run
    before = (run_dir / "records/baseline.jsonl").stat().st_mtime_ns
    proc = superalign("run", "--profile", "smoke", "--device", "cpu", "--out", "runs", home=root / "home", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "baseline: reusing finished results" in proc.stdout
    assert (run_dir / "records/baseline.jsonl").stat().st_mtime_ns == before
    assert len(list((root / "runs").glob("[!.]*"))) == 1


def test_report_command_renders_from_records(smoke_run):
    root, run_dir, _ = smoke_run
    (run_dir / "report.html").unlink()
    proc = superalign("report", str(run_dir), home=root / "home", cwd=root)
    assert proc.returncode == 0, proc.stderr
    html = (run_dir / "report.html").read_text()
    assert "fact.accuracy" in html and "<svg" in html


@pytest.mark.parametrize("override, field", [("baseline.n_fact=-1", "baseline.n_fact"),
                                             ("baseline.colour=red", "baseline.colour"),
                                             ("seed=minus", "seed")])
def test_bad_config_fails_before_any_work_naming_the_field(tmp_path, override, field):
    proc = superalign("run", "--profile", "smoke", "--set", override, home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 2
    assert field in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_unpulled_model_names_the_pull_command(tmp_path):
    proc = superalign("run", "--profile", "quick", "--no-pull", home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 2
    # Both models the quick pipeline needs are named up front, before any stage runs.
    assert "superalign models pull smollm2-135m-instruct" in proc.stderr
    assert "superalign models pull minilm-l6" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_world_prints_prompts_without_answers(tmp_path):
    proc = superalign("world", "--kind", "fact", "-n", "2", home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("--- fact") == 2


def test_config_command_shows_resolved_values(tmp_path):
    proc = superalign("config", "--profile", "smoke", "--set", "baseline.n_fact=3", "--seed", "7",
                      home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "n_fact: 3" in proc.stdout and "seed: 7" in proc.stdout


def test_smoke_run_trains_every_method_and_reports_it(smoke_run):
    _, run_dir, _ = smoke_run
    train = json.loads((run_dir / "results.json").read_text())["metrics"]["train"]
    for method in ("best_of_n", "sft", "dpo", "ppo", "rloo", "online_dpo"):
        assert f"{method}.gold_gain" in train and f"{method}.proxy" in train, method
    lines = [json.loads(line) for line in (run_dir / "records/train.jsonl").read_text().splitlines()]
    kinds = {rec["type"] for rec in lines}
    assert {"preference", "evaluation", "optimization_point"} <= kinds
    methods = {rec["method"] for rec in lines if rec["type"] == "optimization_point"}
    assert methods == {"best_of_n", "ppo", "rloo", "online_dpo"}
    # best-of-n runs on its own subset of the held-out prompts (best_of_n.n_prompts=4 of 6 in smoke)
    bon = [rec for rec in lines if rec["type"] == "evaluation" and rec["model"].endswith("+best_of_4")]
    assert len(bon) == 4
    html = (run_dir / "report.html").read_text()
    assert "Over-optimization" in html and "Policies: before and after" in html


def test_no_interval_of_a_rate_leaves_zero_one(smoke_run):
    """Accuracies, win rates, agreements: their intervals stay in [0, 1] (a t-interval over 2 seeds printed
    0.562 [−0.761, 1.886]); weak-to-strong rates are checked on their typed records."""
    _, run_dir, _ = smoke_run
    rates = [m for m in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
             if m.get("meta", {}).get("rate", True) is not False and m.get("ci_low") is not None]
    w2s = [r for r in map(json.loads, (run_dir / "records/generalize.jsonl").read_text().splitlines())
           if r["type"] == "w2s_score" and r["kind"] in ("score", "agreement", "weak_labels")]
    assert rates and w2s
    for m in rates + [r for r in w2s if r["ci_low"] is not None]:
        assert 0.0 <= m["ci_low"] <= m["value"] <= m["ci_high"] <= 1.0, m["name"]


SNAPSHOT = Path(__file__).parent / "data" / "smoke_snapshot.json"


def test_smoke_numbers_match_the_snapshot(smoke_run):
    """Same seeds, same records, same numbers: a change of any number is deliberate. First taken before the
    stage contract (issue 13, which kept them all); retaken when sampling changed on purpose (issue 14: the
    fast sampler draws by inverse CDF; issue 17: the validate and stress stages joined the smoke run; issue 19: the assist stage joined, adding numbers and changing none). Retake with SUPERALIGN_UPDATE_SNAPSHOT=1 and say why in the commit.
    Bit for bit on a machine of the snapshot's precision (bf16: an AVX-512 BF16 CPU); to 1e-4 on others."""
    import hashlib

    _, run_dir, _ = smoke_run
    now = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        m = json.loads(line)
        now[f"{m['stage']}/{m['name']}@{m.get('model')}"] = [m["value"], m.get("ci_low"), m.get("ci_high"), m.get("n")]
    digests = {}
    for path in sorted((run_dir / "records").glob("*.jsonl")):
        # Red-team attempts time their queries: the one field of a record that is not a function of the seeds.
        lines = [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in path.read_text().splitlines()]
        digests[path.stem] = hashlib.sha256(json.dumps(lines, sort_keys=True).encode()).hexdigest()
    from superalign.models.precision import fast_bf16

    made_in = "bf16" if fast_bf16("cpu") else "fp32"  # the smoke run's precision on this machine
    if os.environ.get("SUPERALIGN_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps({"metrics": now, "records_sha256": digests, "precision": made_in}, indent=1,
                                       sort_keys=True) + "\n")
    before = json.loads(SNAPSHOT.read_text())
    assert set(now) == set(before["metrics"])
    if made_in == before["precision"]:  # every number and record to the bit
        for key, values in before["metrics"].items():
            assert now[key] == pytest.approx(values, abs=1e-9), key
        assert digests == before["records_sha256"]
    else:
        # Another precision's kernels (e.g. fp32 on an AVX2 CPU against a bf16 snapshot) round reward scores and
        # losses differently in their last bits (measured: 15 of 204 numbers moved, by at most 2e-5 relative, every
        # text the same), so the records' floats differ: every number to 1e-4, no digests.
        def close(x, y) -> bool:  # None (an undefined bound) only equals None
            return x == y if x is None or y is None else x == pytest.approx(y, rel=1e-4, abs=1e-6)

        for key, values in before["metrics"].items():
            assert all(close(x, y) for x, y in zip(now[key], values)), (key, now[key], values)


def test_a_run_exports_as_a_hugging_face_dataset_with_the_config_that_made_it(smoke_run, tmp_path):
    import datasets

    root, run_dir, _ = smoke_run
    proc = superalign("export", str(run_dir), "--out", str(tmp_path / "ds"), home=root / "home", cwd=root)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (run_dir / "records" / "baseline.jsonl").read_text().splitlines()]
    loaded = datasets.load_dataset(str(tmp_path / "ds"), "baseline-evaluation", split="train")
    assert loaded.num_rows == len(records) and loaded[0]["response"] == records[0]["response"]
    metrics = datasets.load_dataset(str(tmp_path / "ds"), "metrics", split="train")
    assert metrics.num_rows == len((run_dir / "metrics.jsonl").read_text().splitlines())
    assert "config_name: baseline-evaluation" in (tmp_path / "ds" / "README.md").read_text()
    # The config that made the run, rerun: the same run directory, every stage found finished.
    again = superalign("run", "--profile", "smoke", "--config", str(tmp_path / "ds" / "superalign.yaml"), "--out", "runs",
                       home=root / "home", cwd=root)
    assert again.returncode == 0 and str(run_dir.name) in again.stdout and "reusing finished results" in again.stdout
    assert "started" not in again.stdout
    refused = superalign("export", str(run_dir), "--out", str(tmp_path / "ds"), home=root / "home", cwd=root)
    assert refused.returncode == 2 and "not empty" in refused.stderr
