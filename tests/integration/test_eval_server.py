"""The generalize stage against the evaluation server: the same numbers as with the labels in process, and the
server's log of what it was asked."""

from __future__ import annotations

import json

from superalign.eval_server import ServerConfig
from superalign.eval_server.process import ServerProcess
from tests.integration.test_cli import superalign


def _metrics(runs) -> dict:
    (run_dir,) = [p for p in runs.glob("[!.]*") if p.is_dir()]
    return json.loads((run_dir / "results.json").read_text())["metrics"]["generalize"]


def test_generalize_through_the_server_gives_the_numbers_it_gives_in_process(tmp_path):
    local = superalign("generalize", "--profile", "smoke", "--device", "cpu", "--out", "local", home=tmp_path / "home",
                       cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    config = ServerConfig(tmp_path / "server", world_seed=0, tasks={"fact": (48, 24), "reward": (48, 24)})
    with ServerProcess(config) as url:
        remote = superalign("generalize", "--profile", "smoke", "--device", "cpu", "--out", "remote",
                            "--set", f"generalize.eval_server={url}", home=tmp_path / "home", cwd=tmp_path)
        assert remote.returncode == 0, remote.stderr
    want, got = _metrics(tmp_path / "local"), _metrics(tmp_path / "remote")
    assert got.keys() == want.keys() and all(got[k]["value"] == want[k]["value"] for k in want)
    queries = [json.loads(line) for line in (tmp_path / "server" / "queries.jsonl").read_text().splitlines()]
    finals = [q for q in queries if q["route"] == "score" and q["test"]]
    assert len(finals) == 2 * 2 * 4  # tasks x seeds x (weak, ceiling, naive, confidence): each a whole test set
    assert not (tmp_path / "server" / "exploits.jsonl").exists()  # an honest stage reads nothing it may not


def test_an_unreachable_server_stops_the_stage_in_one_line(tmp_path):
    proc = superalign("generalize", "--profile", "smoke", "--set", "generalize.eval_server=http://127.0.0.1:9",
                      home=tmp_path / "home", cwd=tmp_path)
    assert proc.returncode == 2 and "evaluation server http://127.0.0.1:9: not reachable" in proc.stderr, proc.stderr
