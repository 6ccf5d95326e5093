"""Run phase (tunesmith's own): what a running job does before its first step.

``operations.phase`` names it (``LOADING_BASE_MODEL`` from the claim, ``PREPARING_BASE_MODEL``
while a first run converts its base model) and ``phase_progress`` how far it is (0 to 1, NULL
when not measured). The first step's snapshot clears both: from then on the steps tell.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("operations", sa.Column("phase", sa.String(32)))
    op.add_column("operations", sa.Column("phase_progress", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("phase_progress")
        batch.drop_column("phase")
