"""Alembic environment: migrations run on the connection that :func:`superalign.studio.db.migrate` passes.

A schema change is a new file in ``versions/`` (copy ``0001_initial.py``: ``revision``, ``down_revision``,
``upgrade()``, ``downgrade()``) next to the change of the models in ``db.py``;
``tests/unit/test_studio_db.py`` checks that the migrated schema equals the models.
"""

from alembic import context

from superalign.studio.db import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable through the alembic command line
    raise RuntimeError("run the studio's migrations through superalign.studio.db.migrate(engine)")

# render_as_batch: SQLite cannot ALTER most things; batch mode copies the table instead.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  compare_type=True, version_table="studio_alembic_version")
with context.begin_transaction():
    context.run_migrations()
