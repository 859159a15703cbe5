"""`inspect eval superalign/world --model superalign/<model>`: inspect finds the task and the model provider through
this package's entry point, as a user's shell would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def test_the_inspect_cli_runs_the_world_task_on_a_superalign_model(tmp_path):
    inspect = shutil.which("inspect", path=str(Path(sys.executable).parent)) or "inspect"
    env = {**os.environ, "SUPERALIGN_HOME": str(tmp_path / "home"), "INSPECT_LOG_DIR": str(tmp_path / "logs")}
    proc = subprocess.run([inspect, "eval", "superalign/world", "-T", "kind=policy", "-T", "n=3", "-T", "max_tokens=8",
                           "--model", "superalign/tiny-llama", "--display", "plain"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "superalign_world_policy" in proc.stdout and "passed" in proc.stdout, proc.stdout[-2000:]
    assert list((tmp_path / "logs").glob("*.eval"))
