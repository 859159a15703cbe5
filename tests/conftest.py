"""Shared fixtures. Only the studio's for now: databases for its tests, started lazily.

``studio_db_url`` runs a test once on SQLite and once on PostgreSQL. PostgreSQL comes from
``SUPERALIGN_TEST_POSTGRES_URL`` (a server where the user may CREATE DATABASE; `.ci/run` sets it) or, when
the PostgreSQL binaries are installed, from a throwaway cluster started here for the session; otherwise
the PostgreSQL half is skipped with the reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

POSTGRES_ENV = "SUPERALIGN_TEST_POSTGRES_URL"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _start_cluster() -> tuple[str, callable]:
    """A throwaway PostgreSQL cluster on a free loopback port; returns (url, stop)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip(f"PostgreSQL not available: set {POSTGRES_ENV} or install the postgresql package (initdb)")
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the cluster as the postgres user
        if shutil.which("runuser") is None or subprocess.run(["id", "postgres"], capture_output=True).returncode:
            pytest.skip(f"running as root without a 'postgres' user to own a test cluster; set {POSTGRES_ENV}")
        prefix = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="superalign-pg-"))
    if prefix:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    run = lambda *cmd: subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120)  # noqa: E731
    proc = run(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
    if proc.returncode:
        pytest.skip(f"initdb failed: {proc.stderr.strip()[-300:]}")
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    proc = run(pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-o", opts, "start")
    if proc.returncode:
        pytest.skip(f"PostgreSQL did not start: {proc.stderr.strip()[-300:]}")

    def stop() -> None:
        run(pg_ctl, "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)

    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", stop


@pytest.fixture(scope="session")
def postgres_server():
    """URL of a PostgreSQL server to create test databases on (skips when there is none)."""
    url = os.environ.get(POSTGRES_ENV)
    if url:
        yield url
        return
    url, stop = _start_cluster()
    # A killed test run (`timeout`, CI cancel) sends SIGTERM; as an interrupt it still runs this teardown,
    # so no PostgreSQL server outlives the tests.
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield url
    finally:
        stop()
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, previous)


def _admin_conn(server_url: str):
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(server_url)
    return psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, password=u.password,
                           dbname=u.database or "postgres", autocommit=True)


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    from sqlalchemy.engine import make_url

    name = f"studio_test_{uuid.uuid4().hex[:12]}"
    with _admin_conn(postgres_server) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    with _admin_conn(postgres_server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def studio_db_url(request, tmp_path):
    """The test runs twice: on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'studio.db'}"
    return request.getfixturevalue("postgres_url")
