"""Tuned models, their operations (the job queue) and per-step snapshots.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tuned_models",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(64), index=True),
        sa.Column("display_name", sa.String(40), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("source_model", sa.String(512), nullable=False),
        sa.Column("base_model", sa.String(512), nullable=False),
        sa.Column("tuned_model_source", sa.String(64)),
        sa.Column("temperature", sa.Float),
        sa.Column("top_p", sa.Float),
        sa.Column("top_k", sa.Integer),
        sa.Column("state", sa.Integer, nullable=False),
        sa.Column("create_time", TS, nullable=False),
        sa.Column("update_time", TS, nullable=False),
        sa.Column("start_time", TS),
        sa.Column("complete_time", TS),
        sa.Column("epoch_count", sa.Integer, nullable=False),
        sa.Column("batch_size", sa.Integer, nullable=False),
        sa.Column("learning_rate", sa.Float),
        sa.Column("learning_rate_multiplier", sa.Float),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("total_steps", sa.Integer, nullable=False),
        sa.Column("completed_steps", sa.Integer, nullable=False),
        sa.Column("error_message", sa.Text),
        sa.Column("adapter_path", sa.String(256)),
    )
    op.create_table(
        "operations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "tuned_model_id",
            sa.String(40),
            sa.ForeignKey("tuned_models.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_expires_at", TS),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("error_code", sa.Integer),
        sa.Column("error_message", sa.Text),
        sa.Column("training_data", sa.Text, nullable=False),
    )
    op.create_index("ix_operations_status_created", "operations", ["status", "created_at"])
    op.create_table(
        "snapshots",
        sa.Column(
            "tuned_model_id",
            sa.String(40),
            sa.ForeignKey("tuned_models.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("mean_loss", sa.Float, nullable=False),
        sa.Column("compute_time", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("snapshots")
    op.drop_index("ix_operations_status_created", "operations")
    op.drop_table("operations")
    op.drop_table("tuned_models")
