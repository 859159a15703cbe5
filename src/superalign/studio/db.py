"""Tables, engines and migrations of the studio.

SQLite (a file, the default) runs in WAL mode with ``synchronous=FULL`` so that a label acknowledged to a
labeler survives a crash of the server, and every transaction starts with ``BEGIN IMMEDIATE`` so concurrent
writers queue on the busy timeout instead of failing. PostgreSQL works through any SQLAlchemy URL
(``postgresql+psycopg://user:pass@host/db``). The schema is created and upgraded by the Alembic migrations
shipped in ``superalign/studio/migrations``; :func:`migrate` runs them, no ``alembic`` command needed.

Times are float seconds since the epoch (UTC): the same on both databases, no time-zone ambiguity.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import (JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint,
                        create_engine, event)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from superalign.studio import StudioError

DEFAULT_DB = "sqlite:///studio.db"
MIGRATIONS = Path(__file__).parent / "migrations"


class Base(DeclarativeBase):
    pass


class Setting(Base):
    """Server-wide secrets: the admin token's hash and the key that signs CSRF tokens."""

    __tablename__ = "studio_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class Campaign(Base):
    __tablename__ = "studio_campaigns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    task: Mapped[str] = mapped_column(String(20))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # items.CampaignConfig
    created_at: Mapped[float] = mapped_column(Float)


class Item(Base):
    __tablename__ = "studio_items"
    __table_args__ = (UniqueConstraint("campaign_id", "key", name="uq_item_campaign_key"),
                      Index("ix_item_campaign_position", "campaign_id", "position"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("studio_campaigns.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # labeling order
    key: Mapped[str] = mapped_column(String(250))
    task_id: Mapped[str] = mapped_column(String(250))
    prompt: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    response_a: Mapped[str | None] = mapped_column(Text, nullable=True)
    response_b: Mapped[str | None] = mapped_column(Text, nullable=True)
    assistance: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    # The known answer, if any: never sent to a labeler.
    truth: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    gold: Mapped[bool] = mapped_column(Boolean, default=False)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Why the item could not be shown (e.g. text that cannot be encoded); such an item leaves every queue.
    render_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class Labeler(Base):
    __tablename__ = "studio_labelers"
    __table_args__ = (UniqueConstraint("campaign_id", "name", name="uq_labeler_campaign_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("studio_campaigns.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the invitation token
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float)


class WebSession(Base):
    """A signed-in browser: the cookie holds a random id, the table its hash, the credential it was opened
    with (a re-issued or revoked token ends it) and when it was opened and last used (sessions expire)."""

    __tablename__ = "studio_web_sessions"
    __table_args__ = (Index("ix_web_session_labeler", "labeler_id"),)
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie value
    kind: Mapped[str] = mapped_column(String(10))  # "labeler" | "admin"
    labeler_id: Mapped[int | None] = mapped_column(ForeignKey("studio_labelers.id", ondelete="CASCADE"),
                                                   nullable=True)
    credential_hash: Mapped[str] = mapped_column(String(64))  # the token's hash at sign-in
    created_at: Mapped[float] = mapped_column(Float)
    seen_at: Mapped[float] = mapped_column(Float)


class Assignment(Base):
    """An item served to a labeler: when, and whether with assistance (the recorded random assignment)."""

    __tablename__ = "studio_assignments"
    __table_args__ = (UniqueConstraint("labeler_id", "item_id", name="uq_assignment_labeler_item"),
                      Index("ix_assignment_item", "item_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    labeler_id: Mapped[int] = mapped_column(ForeignKey("studio_labelers.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("studio_items.id", ondelete="CASCADE"))
    assisted: Mapped[bool] = mapped_column(Boolean)
    served_at: Mapped[float] = mapped_column(Float)
    done: Mapped[bool] = mapped_column(Boolean, default=False)


class Label(Base):
    """One acknowledged label. ``submission_id`` is chosen by the client: a retry carries the same id."""

    __tablename__ = "studio_labels"
    __table_args__ = (UniqueConstraint("labeler_id", "submission_id", name="uq_label_labeler_submission"),
                      UniqueConstraint("labeler_id", "item_id", name="uq_label_labeler_item"),
                      Index("ix_label_campaign", "campaign_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("studio_campaigns.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("studio_items.id", ondelete="CASCADE"))
    labeler_id: Mapped[int] = mapped_column(ForeignKey("studio_labelers.id", ondelete="CASCADE"))
    submission_id: Mapped[str] = mapped_column(String(64))
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)  # validated by store.Answer for the campaign's task
    assisted: Mapped[bool] = mapped_column(Boolean)
    served_at: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)


def resolve_url(db: str | os.PathLike | None) -> str:
    """A database URL from ``--db``: a URL as is, a bare path as a SQLite file; default from the environment."""
    db = db or os.environ.get("SUPERALIGN_STUDIO_DB") or DEFAULT_DB
    db = str(db)
    if "://" not in db:
        return f"sqlite:///{Path(db).expanduser().resolve()}"
    return db


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        cur.execute("PRAGMA synchronous=FULL")  # an acknowledged commit survives a crash
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        # A deferred transaction that reads then writes can fail at once with SQLITE_BUSY (no wait);
        # IMMEDIATE takes the write lock up front, so concurrent submissions queue on busy_timeout.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get WAL mode and immediate transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise StudioError("the studio needs a SQLite file (sqlite:///path/studio.db), not an in-memory database")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _sqlite_pragmas(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":  # psycopg 3 is what we depend on, not psycopg2
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return create_engine(url, pool_size=10, max_overflow=30, pool_pre_ping=True)
    raise StudioError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite:///FILE or postgresql://...")


def alembic_config(connection):
    """An Alembic config that runs the shipped migrations on ``connection`` (for ``alembic.command``)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` with the shipped Alembic migrations (a no-op when up to date)."""
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)


def open_db(db: str | os.PathLike | None = None, upgrade: bool = True) -> tuple[Engine, sessionmaker]:
    """Engine and session factory for ``db`` (see :func:`resolve_url`), migrated to the latest schema."""
    from sqlalchemy.exc import OperationalError

    url = resolve_url(db)
    engine = make_engine(url)
    try:
        if upgrade:
            migrate(engine)
    except OperationalError as err:
        engine.dispose()
        first = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
        raise StudioError(f"cannot open database {make_url(url).render_as_string()}: {first}") from None
    return engine, sessionmaker(engine, expire_on_commit=False)
