"""Server-side browser sessions; items that failed to render.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "studio_web_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("labeler_id", sa.Integer, sa.ForeignKey("studio_labelers.id", ondelete="CASCADE"), nullable=True),
        sa.Column("credential_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("seen_at", sa.Float, nullable=False),
    )
    op.create_index("ix_web_session_labeler", "studio_web_sessions", ["labeler_id"])
    with op.batch_alter_table("studio_items") as batch:  # batch: SQLite cannot ALTER a column list otherwise
        batch.add_column(sa.Column("render_error", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("studio_items") as batch:
        batch.drop_column("render_error")
    op.drop_index("ix_web_session_labeler", table_name="studio_web_sessions")
    op.drop_table("studio_web_sessions")
