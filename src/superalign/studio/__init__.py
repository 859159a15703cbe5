"""The feedback studio: a small web app where people give the feedback the pipeline trains and evaluates on.

A researcher creates a *campaign* from pipeline records (``superalign studio campaign create``), invites
labelers with per-labeler tokens, serves the app (``superalign studio serve``) and exports the labels as
the same records the pipeline consumes (``superalign studio export``): :class:`~superalign.records.Preference`
for pairwise comparisons, :class:`~superalign.records.Judgement` for ratings and flaw verdicts,
:class:`~superalign.records.Flaw` for marked spans, :class:`~superalign.records.Demonstration` for written
responses, and a ``Judgement`` (``accept`` / ``reject``) per review of a
:class:`~superalign.records.ResearchFinding` (:func:`~superalign.studio.items.apply_reviews` puts the
verdicts back on the findings).

Modules (none imports a web framework at import time of this package):

- ``items``: campaign items built from records files (pure).
- ``db``: tables, engines (SQLite in WAL mode or PostgreSQL) and migrations (Alembic, run programmatically).
- ``store``: the operations: campaigns, labelers, queues, idempotent submission, export.
- ``quality``: gold accuracy, Cohen's kappa, Krippendorff's alpha, throughput (pure).
- ``security``: tokens (stored hashed, compared in constant time) and CSRF tokens.
- ``web``: the FastAPI app (HTML pages for labelers and the admin, a small JSON API).
- ``cli``: ``superalign studio ...``.
"""

from __future__ import annotations

TASKS = ("pairwise", "rating", "flaw", "demonstration", "review")


class StudioError(ValueError):
    """A mistake the user can fix (bad campaign, unknown labeler, unreadable source); one line in the CLI."""
