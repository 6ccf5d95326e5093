"""OpenAI's dialect: uploaded files, fine-tuning jobs' own fields, pausing, per-job seeds.

* ``files``: who owns each uploaded file, its name, purpose and size; the bytes live under
  ``TUNESMITH_HOME/files/ID`` (the id is the store's, never user text);
* ``fine_tuning_jobs``: what a fine-tuning job adds to the tuning job it is (its files,
  suffix, metadata, OpenAI error code);
* ``operations.pause_requested`` (a running job told to pause; the PAUSED status itself is a
  value of ``operations.status``) and ``operations.seed``.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(64), index=True),
        sa.Column("filename", sa.String(256), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "fine_tuning_jobs",
        sa.Column(
            "tuned_model_id",
            sa.String(40),
            sa.ForeignKey("tuned_models.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("model", sa.String(512), nullable=False),
        sa.Column("training_file", sa.String(40), nullable=False),
        sa.Column("validation_file", sa.String(40)),
        sa.Column("suffix", sa.String(64)),
        sa.Column("metadata_json", sa.Text),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_param", sa.String(64)),
    )
    op.add_column(
        "operations",
        sa.Column("pause_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column("operations", sa.Column("seed", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("seed")
        batch.drop_column("pause_requested")
    op.drop_table("fine_tuning_jobs")
    op.drop_table("files")
