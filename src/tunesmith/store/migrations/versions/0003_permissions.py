"""Permissions: tuned models shared with users, groups or everyone; keys name their user.

A key's ``user`` (its name unless given) is who owns the models it creates, so several keys
of one person share their models; ``groups`` lists the groups the key's user belongs to.
Models created before this revision were owned by a key id: they move to that key's user.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "permissions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "tuned_model_id",
            sa.String(40),
            sa.ForeignKey("tuned_models.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("grantee_type", sa.String(16), nullable=False),
        sa.Column("email_address", sa.String(320), nullable=False, server_default=""),
        sa.Column("role", sa.String(16), nullable=False),
    )
    op.create_index("ix_permissions_tuned_model_id", "permissions", ["tuned_model_id"])
    op.create_index(
        "ux_permissions_grantee",
        "permissions",
        ["tuned_model_id", "grantee_type", "email_address"],
        unique=True,
    )
    op.add_column("api_keys", sa.Column("user", sa.String(64)))
    op.add_column("api_keys", sa.Column("groups", sa.Text))
    op.execute('UPDATE api_keys SET "user" = name')
    op.execute(
        'UPDATE tuned_models SET owner = (SELECT k."user" FROM api_keys k '
        "WHERE k.id = tuned_models.owner) "
        "WHERE owner IN (SELECT id FROM api_keys)"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE tuned_models SET owner = (SELECT MIN(k.id) FROM api_keys k "
        'WHERE k."user" = tuned_models.owner) '
        'WHERE owner IN (SELECT "user" FROM api_keys)'
    )
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("groups")
        batch.drop_column("user")
    op.drop_index("ux_permissions_grantee", table_name="permissions")
    op.drop_index("ix_permissions_tuned_model_id", table_name="permissions")
    op.drop_table("permissions")
