"""`superalign generalize` (alias `w2s`) and the generalize stage of `superalign run`, end to end on tiny models."""

from __future__ import annotations

import json

from tests.integration.test_cli import superalign


def _rows(path, n: int, label=lambda i: i % 2) -> None:
    path.write_text("".join(json.dumps({"sentence": f"item {i} {'good' if label(i) else 'bad'}",
                                        "positive": label(i)}) + "\n" for i in range(n)))


def test_run_generalize_stage_on_the_smoke_profile(tmp_path):
    proc = superalign("run", "--profile", "smoke", "--set", "stages=[generalize]", home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "runs").glob("[!.]*")
    results = json.loads((run_dir / "results.json").read_text())
    metrics = results["metrics"]["generalize"]
    for task in ("fact", "reward"):
        for role in ("weak", "ceiling", "naive", "confidence"):
            m = metrics[f"{task}.{role}.accuracy"]
            assert 0.0 <= m["value"] <= 1.0 and m["n"] == 2 and m["model"] == "tiny-gpt2 -> tiny-llama"
    stage = results["stages"]["generalize"]["results"]
    assert {row["method"] for row in stage["table"]} == {"naive", "confidence"}
    records = [json.loads(line) for line in (run_dir / "records" / "generalize.jsonl").read_text().splitlines()]
    assert sum(r["type"] == "w2s_seed" for r in records) == 2 * 2  # tasks x seeds
    pgr = [r for r in records if r["type"] == "w2s_score" and r["name"] == "fact.naive.accuracy"]
    assert len(pgr) == 1 and len(pgr[0]["per_seed"]) == 2 and pgr[0]["value"] == metrics["fact.naive.accuracy"]["value"]
    html = (run_dir / "report.html").read_text()
    assert "Weak-to-strong generalization" in html and "<svg" in html
    assert "baseline" not in results["stages"]  # only the asked-for stage ran


def test_w2s_sweep_over_pairs_and_methods_on_a_dataset_file(tmp_path):
    data = tmp_path / "data.jsonl"
    _rows(data, 48)
    proc = superalign("generalize", "--profile", "smoke", "--dataset", str(data), "--text-column", "sentence",
                      "--label-column", "positive", "--pair", "tiny-gpt2", "tiny-llama", "--pair", "tiny-llama",
                      "tiny-gpt2", "--method", "naive", "--method", "bootstrap", "--intermediate", "tiny-llama-2m",
                      "--seeds", "2", home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "weak-to-strong" in proc.stdout and "report:" in proc.stdout
    (run_dir,) = (tmp_path / "runs").glob("[!.]*")
    stage = json.loads((run_dir / "stages" / "generalize.json").read_text())["results"]
    assert {(r["pair"], r["method"]) for r in stage["table"]} == {
        (p, m) for p in ("tiny-gpt2 -> tiny-llama", "tiny-llama -> tiny-gpt2") for m in ("naive", "bootstrap")}
    assert {r["task"] for r in stage["table"]} == {"file:data"}
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["stages"] == ["generalize"] and config["generalize"]["dataset"]["path"] == str(data.resolve())


def test_one_class_dataset_is_a_clear_error(tmp_path):
    data = tmp_path / "one.jsonl"
    _rows(data, 20, label=lambda i: 1)
    proc = superalign("w2s", "--profile", "smoke", "--dataset", str(data), "--text-column", "sentence",
                      "--label-column", "positive", home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 2
    assert "every label is positive" in proc.stderr and "Traceback" not in proc.stderr


def test_mismatched_label_column_is_a_clear_error(tmp_path):
    data = tmp_path / "d.jsonl"
    _rows(data, 20)
    proc = superalign("w2s", "--profile", "smoke", "--dataset", str(data), "--text-column", "sentence",
                      home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 2
    assert "column(s) 'label' not found" in proc.stderr and "'positive'" in proc.stderr


def test_bad_spec_is_a_config_error(tmp_path):
    proc = superalign("w2s", "--profile", "smoke", "--weak", "tiny-gpt2@1.5", home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 2 and "generalize.weak" in proc.stderr
