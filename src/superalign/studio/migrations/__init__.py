"""Alembic migrations of the studio's schema, run by :func:`superalign.studio.db.migrate`."""
