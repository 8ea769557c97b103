"""articles.backfill (first-poll history, never mailed) and sources.tags (OPML categories)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 21:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "articles",
        sa.Column("backfill", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("sources", sa.Column("tags", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("tags")
    with op.batch_alter_table("articles") as batch:
        batch.drop_column("backfill")
