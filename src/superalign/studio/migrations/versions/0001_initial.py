"""The studio's first schema: settings, campaigns, items, labelers, assignments, labels.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "studio_settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    op.create_table(
        "studio_campaigns",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("task", sa.String(20), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "studio_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign_id", sa.Integer, sa.ForeignKey("studio_campaigns.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("task_id", sa.String(250), nullable=False),
        sa.Column("prompt", sa.JSON, nullable=False),
        sa.Column("response_a", sa.Text, nullable=True),
        sa.Column("response_b", sa.Text, nullable=True),
        sa.Column("assistance", sa.JSON, nullable=True),
        sa.Column("truth", sa.JSON, nullable=True),
        sa.Column("gold", sa.Boolean, nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.UniqueConstraint("campaign_id", "key", name="uq_item_campaign_key"),
    )
    op.create_index("ix_item_campaign_position", "studio_items", ["campaign_id", "position"])
    op.create_table(
        "studio_labelers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign_id", sa.Integer, sa.ForeignKey("studio_campaigns.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("campaign_id", "name", name="uq_labeler_campaign_name"),
    )
    op.create_table(
        "studio_assignments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("labeler_id", sa.Integer, sa.ForeignKey("studio_labelers.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("studio_items.id", ondelete="CASCADE"), nullable=False),
        sa.Column("assisted", sa.Boolean, nullable=False),
        sa.Column("served_at", sa.Float, nullable=False),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.UniqueConstraint("labeler_id", "item_id", name="uq_assignment_labeler_item"),
    )
    op.create_index("ix_assignment_item", "studio_assignments", ["item_id"])
    op.create_table(
        "studio_labels",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign_id", sa.Integer, sa.ForeignKey("studio_campaigns.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("studio_items.id", ondelete="CASCADE"), nullable=False),
        sa.Column("labeler_id", sa.Integer, sa.ForeignKey("studio_labelers.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("submission_id", sa.String(64), nullable=False),
        sa.Column("answer", sa.JSON, nullable=False),
        sa.Column("assisted", sa.Boolean, nullable=False),
        sa.Column("served_at", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("labeler_id", "submission_id", name="uq_label_labeler_submission"),
        sa.UniqueConstraint("labeler_id", "item_id", name="uq_label_labeler_item"),
    )
    op.create_index("ix_label_campaign", "studio_labels", ["campaign_id"])


def downgrade() -> None:
    for index, table in (("ix_label_campaign", "studio_labels"), ("ix_assignment_item", "studio_assignments"),
                         ("ix_item_campaign_position", "studio_items")):
        op.drop_index(index, table_name=table)
    for table in ("studio_labels", "studio_assignments", "studio_labelers", "studio_items", "studio_campaigns",
                  "studio_settings"):
        op.drop_table(table)
