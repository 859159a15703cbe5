"""`superalign sweep` on a local Ray instance, end to end on the smoke profile: three seeds, and a sweep killed
mid-way that, restarted, runs only the runs that had not finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.test_cli import superalign

ARGS = ("sweep", "generalize", "--profile", "smoke", "--device", "cpu", "--seeds", "0", "1", "2", "--parallel", "1")


def _finished(runs: Path) -> dict[str, str]:
    """run directory -> when its generalize stage finished."""
    return {p.parents[1].name: json.loads(p.read_text())["finished_at"]
            for p in runs.glob("*/stages/generalize.json")}


def test_a_killed_sweep_restarted_runs_only_the_missing_runs_and_summarizes_three_seeds(tmp_path):
    env = {**os.environ, "SUPERALIGN_HOME": str(tmp_path / "home")}
    runs = tmp_path / "runs"
    # Its own session, so that the kill takes the Ray instance it started with it (as a kill -9 of a shell would).
    first = subprocess.Popen([sys.executable, "-m", "superalign", *ARGS], cwd=tmp_path, env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not _finished(runs) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    before = _finished(runs)
    assert 1 <= len(before) < 3, f"the kill should land after the first run and before the last: {before}"

    proc = superalign(*ARGS, home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"3 runs, {len(before)} finished already, {3 - len(before)} to run" in proc.stdout
    after = _finished(runs)
    assert len(after) == 3 and all(after[name] == when for name, when in before.items())  # not run again
    (folder,) = (runs / "sweeps").iterdir()
    rows = {r["metric"]: r for r in json.loads((folder / "summary.json").read_text())}
    row = rows["fact.naive.accuracy"]
    assert row["n"] == 3 and row["seeds"] == [0, 1, 2] and row["t_low"] <= row["mean"] <= row["t_high"]
    per_seed = [json.loads((runs / name / "results.json").read_text())["metrics"]["generalize"]["fact.naive.accuracy"]
                ["value"] for name in sorted(after, key=lambda n: json.loads((runs / n / "config.json").read_text())
                                             ["config"]["seed"])]
    assert row["values"] == per_seed  # the same records as `superalign run` wrote, one run directory per seed
    assert (folder / "point-0.html").is_file() and "mean over seeds" in proc.stdout
    assert json.loads((folder / "sweep.json").read_text())["stage"] == "generalize"

    again = superalign(*ARGS, home=tmp_path / "home", cwd=tmp_path)
    assert "3 finished already, 0 to run" in again.stdout and "0 ran, 3 reused" in again.stdout


def test_a_bad_sweep_stops_in_one_line_before_any_work(tmp_path):
    for args, says in ((("sweep", "nosuch"), "unknown stage 'nosuch'"),
                       (("sweep", "baseline", "--grid", "baseline.nope=1,2"), "baseline.nope"),
                       (("sweep", "baseline", "--seeds", "1", "1"), "seeds repeat")):
        proc = superalign(*args, "--profile", "smoke", home=tmp_path / "home", cwd=tmp_path)
        assert proc.returncode == 2 and says in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert not (tmp_path / "runs").exists()
