"""Validation data (tunesmith's own): a job's held-out examples and their loss per epoch.

``operations.validation_data`` holds the examples in the form of ``training_data`` (NULL when
the job has none) and ``validation_count`` how many, so reading the losses never loads the
examples. ``validation_losses`` has one row per epoch, written with the step's snapshot.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("operations", sa.Column("validation_data", sa.Text))
    op.add_column(
        "operations",
        sa.Column("validation_count", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "validation_losses",
        sa.Column(
            "tuned_model_id",
            sa.String(40),
            sa.ForeignKey("tuned_models.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("epoch", sa.Integer, primary_key=True),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("mean_loss", sa.Float, nullable=False),
        sa.Column("compute_time", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("validation_losses")
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("validation_count")
        batch.drop_column("validation_data")
