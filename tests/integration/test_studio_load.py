"""Load test over loopback: 20 simulated labelers submit to a real `superalign studio serve` for 60 seconds,
through a server crash and restart halfway; afterwards the database holds exactly the acknowledged labels.

The simulated labelers double-submit some labels (a double click), retry after timeouts and dropped
connections with the same submission id (as the web form does), and send some submissions for items that
are not theirs (refused). Nothing is asserted about speed; the numbers go to
``test-artifacts/studio/load-<database>.json``.

Duration: ``SUPERALIGN_STUDIO_LOAD_SECONDS`` (default 60) on SQLite; PostgreSQL runs
``SUPERALIGN_STUDIO_LOAD_SECONDS_POSTGRES`` (default 20) to keep the suite's time modest.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from superalign.studio import store
from superalign.studio.db import Label, Labeler, open_db
from superalign.studio.items import CampaignConfig, ItemSpec
from tests.conftest import free_port

N_LABELERS = 20
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "studio"


def _duration(backend: str) -> float:
    if backend == "postgresql":
        return float(os.environ.get("SUPERALIGN_STUDIO_LOAD_SECONDS_POSTGRES", "20"))
    return float(os.environ.get("SUPERALIGN_STUDIO_LOAD_SECONDS", "60"))


def _start(studio_db_url: str, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "superalign", "studio", "serve", "--db", studio_db_url, "--port",
                             str(port), "--log-level", "warning"], stdout=log.open("a"), stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail(f"the studio did not start: {log.read_text()[-2000:]}")


class SimulatedLabeler(threading.Thread):
    """Labels until the deadline; every submission is retried with the same id until it is acknowledged."""

    def __init__(self, base: str, token: str, deadline: float, seed: int):
        super().__init__(daemon=True)
        self.base, self.token, self.deadline = base, token, deadline
        self.rng = random.Random(seed)
        self.acked: dict[str, int] = {}  # submission id -> label id, from 200/201 answers only
        self.stats: Counter = Counter()
        self.error: BaseException | None = None

    def _request(self, client: httpx.Client, method: str, path: str, **kw) -> httpx.Response:
        """One request, retried on connection errors and timeouts (the server may be restarting)."""
        give_up = self.deadline + 120
        while True:
            try:
                return client.request(method, self.base + path, **kw)
            except (httpx.TransportError, httpx.TimeoutException):
                self.stats["transport_retries"] += 1
                if time.monotonic() > give_up:
                    raise
                time.sleep(0.2 + self.rng.random() * 0.3)

    def _submit(self, client: httpx.Client, body: dict) -> httpx.Response:
        response = self._request(client, "POST", "/api/v1/labels", json=body)
        if response.status_code in (200, 201):
            self.acked[body["submission_id"]] = response.json()["label_id"]
        return response

    def run(self) -> None:
        try:
            self._run()
        except BaseException as err:  # noqa: BLE001 - re-raised in the test thread
            self.error = err

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(headers=headers, timeout=httpx.Timeout(10.0, connect=2.0)) as client:
            while time.monotonic() < self.deadline:
                nxt = self._request(client, "GET", "/api/v1/next")
                assert nxt.status_code == 200, nxt.text
                item = nxt.json()["item"]
                if item is None:
                    self.stats["queue_empty"] += 1
                    break
                if self.rng.random() < 0.05:  # an item that is not ours: refused, nothing written
                    bad = {"item_id": item["id"] + 10**6, "submission_id": uuid.uuid4().hex,
                           "answer": {"choice": "A"}}
                    assert self._request(client, "POST", "/api/v1/labels", json=bad).status_code == 404
                    self.stats["refused"] += 1
                choice = self.rng.choice(["A", "B", "tie"])
                answer = {"choice": choice} if choice == "tie" else {"choice": choice, "confidence": 0.75}
                body = {"item_id": item["id"], "submission_id": uuid.uuid4().hex, "answer": answer}
                first = self._submit(client, body)
                assert first.status_code in (200, 201), first.text
                if first.status_code == 200:  # committed, but the answer was lost in the crash; the retry says so
                    self.stats["retry_found_committed"] += 1
                self.stats["submitted"] += 1
                if self.rng.random() < 0.1:  # a double click: acknowledged again, recorded once
                    again = self._submit(client, body)
                    assert again.status_code == 200 and again.json()["duplicate"], again.text
                    assert again.json()["label_id"] == first.json()["label_id"]
                    self.stats["double_submits"] += 1


@pytest.mark.parametrize("restart", [True], ids=["with-crash-restart"])
def test_concurrent_labelers_lose_and_duplicate_nothing(studio_db_url, tmp_path, restart):
    backend = "postgresql" if studio_db_url.startswith("postgresql") else "sqlite"
    duration = _duration(backend)
    engine, sessions = open_db(studio_db_url)
    with sessions() as s:
        items = [ItemSpec(key=f"i{i}", task_id=f"t{i}", prompt=[{"role": "user", "content": f"Question {i}?"}],
                          response_a=f"answer A to {i}", response_b=f"answer B to {i}",
                          assistance={"kind": "critique", "text": "B is vague."} if i % 3 == 0 else None,
                          truth={"choice": "A"} if i % 20 == 0 else None, gold=i % 20 == 0)
                 for i in range(4000)]
        campaign = store.create_campaign(s, "load", CampaignConfig(task="pairwise", labels_per_item=5,
                                                                   gold_fraction=0), items)
        tokens = [store.add_labeler(s, campaign, f"sim{i:02d}")[1] for i in range(N_LABELERS)]
    engine.dispose()

    port, log = free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    server = _start(studio_db_url, port, log)
    started = time.monotonic()
    deadline = started + duration
    labelers = [SimulatedLabeler(base, t, deadline, seed=i) for i, t in enumerate(tokens)]
    try:
        for lab in labelers:
            lab.start()
        if restart:
            time.sleep(duration / 2)
            server.send_signal(signal.SIGKILL)  # a crash, not a graceful stop: in-flight requests are cut
            server.wait(timeout=30)
            server = _start(studio_db_url, port, log)
        for lab in labelers:
            lab.join(timeout=duration + 300)
        elapsed = time.monotonic() - started
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    for lab in labelers:
        assert not lab.is_alive(), "a simulated labeler hung"
        if lab.error:
            raise lab.error

    acked = {(f"sim{i:02d}", sub): label_id for i, lab in enumerate(labelers) for sub, label_id in lab.acked.items()}
    engine, sessions = open_db(studio_db_url)
    try:
        with sessions() as s:
            stored = {(name, sub): label_id for name, sub, label_id in
                      s.execute(select(Labeler.name, Label.submission_id, Label.id).join(Labeler)).all()}
            per_item = s.execute(select(Label.labeler_id, Label.item_id, func.count()).group_by(
                Label.labeler_id, Label.item_id).having(func.count() > 1)).all()
    finally:
        engine.dispose()

    stats = sum((lab.stats for lab in labelers), Counter())
    numbers = {"database": backend, "labelers": N_LABELERS, "seconds": round(elapsed, 1),
               "acknowledged": len(acked), "stored": len(stored),
               "labels_per_second": round(len(acked) / elapsed, 1), **stats}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"load-{backend}.json").write_text(json.dumps(numbers, indent=2) + "\n")
    print(numbers)

    # Exactly the acknowledged labels: none lost (crash included), none extra, none twice.
    assert stored == acked
    assert not per_item
    assert len(acked) >= N_LABELERS  # every simulated labeler got labels through
    assert stats["double_submits"] > 0 and stats["refused"] > 0  # the nasty paths were exercised
