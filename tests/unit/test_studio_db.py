"""Studio database: migrations create exactly the models' schema, SQLite runs in WAL mode, clear errors."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from superalign.studio import StudioError
from superalign.studio.db import Base, alembic_config, make_engine, migrate, open_db, resolve_url


def test_migrations_create_the_models_schema(studio_db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine, _ = open_db(studio_db_url)
    try:
        with engine.connect() as conn:
            opts = {"compare_type": True, "version_table": "studio_alembic_version"}
            diff = compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata)
            tables = set(inspect(conn).get_table_names())
            version = conn.execute(text("SELECT version_num FROM studio_alembic_version")).scalar()
        # The migration scripts and db.py describe the same schema: no pending autogenerate diff.
        assert diff == []
        assert {"studio_campaigns", "studio_items", "studio_labelers", "studio_assignments", "studio_labels",
                "studio_settings", "studio_web_sessions"} <= tables
        assert version == "0002"
        migrate(engine)  # idempotent: upgrading an up-to-date database changes nothing
        from alembic import command

        with engine.begin() as conn:  # the downgrade works too
            command.downgrade(alembic_config(conn), "base")
        with engine.connect() as conn:
            assert "studio_labels" not in inspect(conn).get_table_names()
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path):
    engine, _ = open_db(tmp_path / "s.db")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_resolve_url(tmp_path, monkeypatch):
    monkeypatch.delenv("SUPERALIGN_STUDIO_DB", raising=False)
    assert resolve_url(tmp_path / "x.db") == f"sqlite:///{tmp_path / 'x.db'}"
    assert resolve_url("postgresql://u@h/d") == "postgresql://u@h/d"
    monkeypatch.setenv("SUPERALIGN_STUDIO_DB", "sqlite:////tmp/other.db")
    assert resolve_url(None) == "sqlite:////tmp/other.db"


def test_bad_databases_fail_with_one_clear_line(tmp_path):
    with pytest.raises(StudioError, match="in-memory"):
        make_engine("sqlite://")
    with pytest.raises(StudioError, match="unsupported database 'mysql'"):
        make_engine("mysql://u@h/d")
    with pytest.raises(StudioError, match="cannot open database"):
        open_db("postgresql://nobody:secret@127.0.0.1:1/nothing")


def test_plain_postgresql_urls_use_psycopg3():
    engine = make_engine("postgresql://u:p@127.0.0.1:1/d")
    assert engine.url.drivername == "postgresql+psycopg"
    engine.dispose()


def test_a_0001_database_upgrades_with_its_items(studio_db_url):
    """A studio database made before server-side sessions keeps its campaigns and items on upgrade."""
    engine = make_engine(studio_db_url)
    try:
        migrate(engine, "0001")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO studio_campaigns (id, name, task, config, created_at) "
                              "VALUES (1, 'old', 'pairwise', '{\"task\": \"pairwise\"}', 0)"))
            conn.execute(text("INSERT INTO studio_items (id, campaign_id, position, key, task_id, prompt, "
                              "response_a, response_b, gold, meta) VALUES (1, 1, 0, 'k', 't', "
                              "'[{\"role\": \"user\", \"content\": \"Hi\"}]', 'a', 'b', false, '{}')"))
        migrate(engine)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT key, render_error FROM studio_items")).all()
        assert [tuple(r) for r in rows] == [("k", None)]
    finally:
        engine.dispose()
