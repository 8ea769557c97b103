"""feed error kind: sources.last_error_kind (errors.FeedErrorKind of the last failure)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 21:30:00

A nullable column added with plain ALTER TABLE ADD COLUMN: portable to PostgreSQL and
SQLite alike (no batch mode needed). Rows with an error from before keep a NULL kind,
shown as "-" until their next poll.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sources", sa.Column("last_error_kind", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:  # SQLite cannot drop a column in place
        batch.drop_column("last_error_kind")
